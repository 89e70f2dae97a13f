//! `gangway token create|list|revoke`: per-user API tokens, for clients that cannot reach the
//! head's socket (another machine): `GANGWAY_URL` and `GANGWAY_TOKEN` then name the user.

use std::time::Duration;

use anyhow::{bail, Context};
use gangway_api::client::Client;
use gangway_api::tokens::TokenAddParameter;
use gangway_api::IsoDuration;

use super::table::render;

/// `gangway token create [--name NAME] [--expires 30d]`, `gangway token list`,
/// `gangway token revoke ID`.
pub fn token(
    c: &mut Client,
    action: &str,
    id: Option<&str>,
    name: Option<String>,
    expires: Option<Duration>,
    json: bool,
) -> anyhow::Result<()> {
    match action {
        "create" => {
            let t = c.create_token(&TokenAddParameter { name, expires_in: expires.map(IsoDuration) })?;
            if json {
                gangway_api::outln!("{}", serde_json::to_string_pretty(&t)?);
                return Ok(());
            }
            gangway_api::outln!("{}", t.token.as_deref().context("the head sent no token")?);
            let until = t.expiry_time.map_or_else(|| "until revoked".to_owned(), |e| format!("until {e}"));
            gangway_api::errln!(
                "token {} acts as {} {until}; it is shown only now (use it as GANGWAY_TOKEN with GANGWAY_URL)",
                t.id,
                t.owner.name
            );
        }
        "list" => {
            let tokens = c.list_tokens()?;
            if json {
                gangway_api::outln!("{}", serde_json::to_string_pretty(&tokens)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = tokens
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.owner.name.clone(),
                        t.name.clone().unwrap_or_default(),
                        t.creation_time.to_string(),
                        t.expiry_time.map_or_else(|| "never".to_owned(), |e| e.to_string()),
                    ]
                })
                .collect();
            gangway_api::out!("{}", render(&["ID", "USER", "NAME", "CREATED", "EXPIRES"], &rows));
        }
        "revoke" => {
            let id = id.context("gangway token revoke needs the token's id (see gangway token list)")?;
            c.revoke_token(id)?;
            gangway_api::errln!("token {id} revoked");
        }
        other => bail!("unknown token command '{other}' (create, list, revoke)"),
    }
    Ok(())
}

/// `gangway node join-token [NODE] [--expires 1h] [--uses N]` (admins): prints a join token a
/// new node starts with once (`gangway-node --join-token-file FILE --ca STATE_DIR/tls/ca.crt`).
pub fn join_token(
    c: &mut Client,
    node: Option<&str>,
    expires: Option<Duration>,
    uses: Option<u32>,
    json: bool,
) -> anyhow::Result<()> {
    let p = gangway_api::tokens::JoinTokenAddParameter {
        expires_in: expires.map(IsoDuration),
        uses,
        node: node.map(str::to_owned),
    };
    let t = c.create_join_token(&p)?;
    if json {
        gangway_api::outln!("{}", serde_json::to_string_pretty(&t)?);
        return Ok(());
    }
    gangway_api::outln!("{}", t.token.as_deref().context("the head sent no token")?);
    let whom = t.node.as_deref().map_or_else(|| format!("{} node(s)", t.uses_left), |n| format!("node {n}"));
    gangway_api::errln!("join token {} lets {whom} join until {}; it is shown only now", t.id, t.expiry_time);
    Ok(())
}
