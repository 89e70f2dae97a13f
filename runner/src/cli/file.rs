//! `gangway file put|list|delete`: the head's file store, for `uploadedFile` resource files.

use std::path::Path;

use anyhow::{bail, Context};
use gangway_api::client::Client;

use super::table::render;

/// `gangway file put LOCAL [--name NAME]`, `gangway file list`, `gangway file delete NAME`.
pub fn file(c: &mut Client, action: &str, arg: Option<&str>, name: Option<&str>, json: bool) -> anyhow::Result<()> {
    match action {
        "put" => {
            let local = arg.context("gangway file put needs a local file: gangway file put LOCAL [--name NAME]")?;
            let name = match name {
                Some(n) => n.to_owned(),
                None => Path::new(local)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .with_context(|| format!("'{local}' has no file name; give one with --name"))?
                    .to_owned(),
            };
            gangway_api::files::validate_file_name(&name).map_err(anyhow::Error::msg)?;
            let data = std::fs::read(local).with_context(|| format!("reading {local}"))?;
            c.put_file(&name, &data)?;
            eprintln!("stored {local} as '{name}' ({} bytes); use it as {{\"uploadedFile\": \"{name}\"}}", data.len());
        }
        "list" => {
            let files = c.list_files()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&files)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> =
                files.iter().map(|f| vec![f.name.clone(), f.size.to_string(), f.last_modified.to_string()]).collect();
            print!("{}", render(&["NAME", "SIZE", "MODIFIED"], &rows));
        }
        "delete" => {
            let name = arg.context("gangway file delete needs the stored file's name")?;
            c.delete_file(name)?;
            eprintln!("file '{name}' deleted");
        }
        "get" => {
            let name = arg.context("gangway file get needs the stored file's name")?;
            use std::io::Write as _;
            std::io::stdout().write_all(&c.get_file(name)?)?;
        }
        other => bail!("unknown file command '{other}' (put, get, list, delete)"),
    }
    Ok(())
}
