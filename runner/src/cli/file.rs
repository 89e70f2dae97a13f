//! `gangway file put|get|list|delete`: the head's file store, for `uploadedFile` resource
//! files and output files; and `gangway app`, its application packages.

use std::path::Path;

use anyhow::{bail, Context};
use gangway_api::client::Client;

use super::table::render;

/// `gangway file put LOCAL [--name NAME]`, `gangway file get NAME`, `gangway file list`,
/// `gangway file delete NAME`.
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
            gangway_api::errln!(
                "stored {local} as '{name}' ({} bytes); use it as {{\"uploadedFile\": \"{name}\"}}",
                data.len()
            );
        }
        "list" => {
            let files = c.list_files()?;
            if json {
                gangway_api::outln!("{}", serde_json::to_string_pretty(&files)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> =
                files.iter().map(|f| vec![f.name.clone(), f.size.to_string(), f.last_modified.to_string()]).collect();
            gangway_api::out!("{}", render(&["NAME", "SIZE", "MODIFIED"], &rows));
        }
        "delete" => {
            let name = arg.context("gangway file delete needs the stored file's name")?;
            c.delete_file(name)?;
            gangway_api::errln!("file '{name}' deleted");
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

/// `gangway app list`, `gangway app upload ID VERSION ARCHIVE`, `gangway app default ID
/// VERSION`, `gangway app delete ID VERSION`: application packages.
pub fn app(c: &mut Client, action: &str, args: &[String], json: bool) -> anyhow::Result<()> {
    let arg = |i: usize, what: &str| {
        args.get(i).map(String::as_str).with_context(|| format!("gangway app {action} needs {what}"))
    };
    match action {
        "list" => {
            let apps = c.list_applications()?;
            if json {
                gangway_api::outln!("{}", serde_json::to_string_pretty(&apps)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = apps
                .iter()
                .flat_map(|a| {
                    a.versions.iter().map(move |v| {
                        let default = if a.default_version.as_deref() == Some(v.version.as_str()) { "yes" } else { "" };
                        let format = serde_json::to_value(v.format)
                            .ok()
                            .and_then(|f| f.as_str().map(str::to_owned))
                            .unwrap_or_default();
                        vec![
                            a.id.clone(),
                            v.version.clone(),
                            default.into(),
                            format,
                            v.size.to_string(),
                            v.sha256[..12.min(v.sha256.len())].to_owned(),
                        ]
                    })
                })
                .collect();
            gangway_api::out!("{}", render(&["APPLICATION", "VERSION", "DEFAULT", "FORMAT", "SIZE", "SHA256"], &rows));
        }
        "upload" => {
            let (id, version, local) =
                (arg(0, "an application id")?, arg(1, "a version")?, arg(2, "an archive (zip or tar.gz)")?);
            let data = std::fs::read(local).with_context(|| format!("reading {local}"))?;
            c.upload_application(id, version, &data)?;
            gangway_api::errln!("application {id} version {version} uploaded");
        }
        "default" => {
            let (id, version) = (arg(0, "an application id")?, arg(1, "a version")?);
            c.set_default_version(id, version)?;
            gangway_api::errln!("application {id} defaults to version {version}");
        }
        "delete" => {
            let (id, version) = (arg(0, "an application id")?, arg(1, "a version")?);
            c.delete_application_version(id, version)?;
            gangway_api::errln!("application {id} version {version} deleted");
        }
        other => bail!("unknown app command '{other}' (list, upload, default, delete)"),
    }
    Ok(())
}
