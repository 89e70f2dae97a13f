//! Output files (Azure's `outputFiles`): what a task leaves is copied out when it ends.

use serde::{Deserialize, Serialize};

/// One `outputFiles` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputFile {
    /// Files to copy, relative to the task's working directory: `*` and `?` within a name,
    /// `[…]` a character class, `**` any number of directories; a leading `../` reaches the
    /// task directory (`../std*.txt`).
    pub file_pattern: String,
    /// Where to.
    pub destination: OutputFileDestination,
    /// When.
    #[serde(default)]
    pub upload_options: OutputFileUploadOptions,
}

/// Exactly one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputFileDestination {
    /// Azure's: an HTTP URL each file is `PUT` to (`containerUrl/path[/relative path]`; a
    /// query string, as a SAS has, is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<OutputFileContainer>,
    /// gangway: a directory on the node (a shared file system, say), written as the task's
    /// user; files keep their path relative to where the pattern starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// gangway: the head's file store, the task user's (`GET /files/NAME`): the file's name
    /// (a pattern without wildcards) or a name prefix, to which each file's path below the
    /// pattern's fixed directories is added (`/` as `.`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_file: Option<String>,
}

impl OutputFileDestination {
    /// The store name of a file named `name` (below the pattern's fixed directories) when the
    /// destination is the head's file store named `prefix`.
    pub fn store_name(prefix: &str, name: &str, wild: bool) -> String {
        if !wild {
            return prefix.to_owned();
        }
        let tail: String = name
            .chars()
            .map(|c| {
                if c == '/' {
                    '.'
                } else if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{prefix}{tail}")
    }
}

/// Azure's `container` destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputFileContainer {
    /// `http://…` (gangway speaks plain HTTP only).
    pub container_url: String,
    /// The name (one file) or name prefix (a pattern with wildcards) under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `uploadOptions`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputFileUploadOptions {
    /// When the files are copied (default `taskcompletion`).
    #[serde(default)]
    pub upload_condition: UploadCondition,
}

/// `{"tasksuccess", "taskfailure", "taskcompletion"}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadCondition {
    /// Only after exit code 0.
    TaskSuccess,
    /// Only after a failure.
    TaskFailure,
    /// Always.
    #[default]
    TaskCompletion,
}

impl UploadCondition {
    /// Whether an attempt that ended with `success` uploads.
    pub fn applies(self, success: bool) -> bool {
        match self {
            UploadCondition::TaskSuccess => success,
            UploadCondition::TaskFailure => !success,
            UploadCondition::TaskCompletion => true,
        }
    }
}

impl OutputFile {
    /// Checks one entry; the message names `field` (`outputFiles[2]`).
    pub fn validate(&self, field: &str) -> Result<(), String> {
        let p = &self.file_pattern;
        let rest = p.strip_prefix("../").unwrap_or(p);
        if rest.is_empty() || p.starts_with('/') || rest.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(format!(
                "{field}.filePattern '{p}' must be relative to the working directory (a leading ../ reaches the task directory, no further)"
            ));
        }
        let d = &self.destination;
        if let Some(name) = &d.uploaded_file {
            if d.container.is_some() || d.path.is_some() {
                return Err(format!("{field}.destination must name exactly one of container, path and uploadedFile"));
            }
            return crate::files::validate_file_name(name)
                .map_err(|e| format!("{field}.destination.uploadedFile: {e}"));
        }
        match (&self.destination.container, &self.destination.path) {
            (Some(c), None) => {
                if !c.container_url.starts_with("http://") {
                    return Err(format!(
                        "{field}.destination.container.containerUrl '{}' must be an http:// URL (gangway speaks plain HTTP)",
                        c.container_url
                    ));
                }
                crate::http::HttpClient::new(c.container_url.split('?').next().unwrap_or_default())
                    .map_err(|e| format!("{field}.destination.container.containerUrl: {e}"))?;
                Ok(())
            }
            (None, Some(path)) if path.starts_with('/') && !path.split('/').any(|c| c == "..") => Ok(()),
            (None, Some(path)) => {
                Err(format!("{field}.destination.path '{path}' must be an absolute path without '..'"))
            }
            _ => Err(format!("{field}.destination must name exactly one of container, path and uploadedFile")),
        }
    }
}

/// Whether `name` (one path component) matches `pattern`'s component: `*`, `?` and `[…]`
/// (`[!…]` or `[^…]` negated, `a-z` ranges).
pub fn component_matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // Returns whether c is in the class at p[0] == '[', and the class's length.
        let mut i = 1;
        let negate = matches!(p.get(1), Some('!' | '^'));
        if negate {
            i += 1;
        }
        let mut found = false;
        let start = i;
        while i < p.len() && (p[i] != ']' || i == start) {
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                found |= (p[i]..=p[i + 2]).contains(&c);
                i += 3;
            } else {
                found |= p[i] == c;
                i += 1;
            }
        }
        (i < p.len()).then_some((found != negate, i + 1))
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => match (n.first(), class(p, *n.first().unwrap_or(&'\0'))) {
                (Some(_), Some((true, len))) => go(&p[len..], &n[1..]),
                (Some(c), None) => *c == '[' && go(&p[1..], &n[1..]),
                _ => false,
            },
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

/// Whether the relative path `path` (components split by `/`) matches `pattern`, where a
/// `**` component stands for any number of components.
pub fn path_matches(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.first() {
        None => path.is_empty(),
        Some(&"**") => (0..=path.len()).any(|k| path_matches(&pattern[1..], &path[k..])),
        Some(p) => !path.is_empty() && component_matches(p, path[0]) && path_matches(&pattern[1..], &path[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_azure_documents() {
        let m = |p: &str, n: &str| path_matches(&p.split('/').collect::<Vec<_>>(), &n.split('/').collect::<Vec<_>>());
        for (p, n, want) in [
            ("*.txt", "out.txt", true),
            ("*.txt", "sub/out.txt", false),
            ("**/*.txt", "sub/deeper/out.txt", true),
            ("**/*.txt", "out.txt", true),
            ("out?.dat", "out1.dat", true),
            ("out?.dat", "out10.dat", false),
            ("out[0-4].dat", "out3.dat", true),
            ("out[0-4].dat", "out7.dat", false),
            ("out[!0-4].dat", "out7.dat", true),
            ("res/**", "res/a/b", true),
            ("std*.txt", "stdout.txt", true),
            ("a[.txt", "a[.txt", true),
        ] {
            assert_eq!(m(p, n), want, "{p} ~ {n}");
        }
    }

    #[test]
    fn conditions_and_bad_entries() {
        assert!(UploadCondition::TaskFailure.applies(false) && !UploadCondition::TaskFailure.applies(true));
        assert!(UploadCondition::TaskSuccess.applies(true) && !UploadCondition::TaskSuccess.applies(false));
        let f = |pattern: &str, dest: OutputFileDestination| OutputFile {
            file_pattern: pattern.into(),
            destination: dest,
            upload_options: Default::default(),
        };
        let path = |p: &str| OutputFileDestination { path: Some(p.into()), ..Default::default() };
        let url = |u: &str| OutputFileDestination {
            container: Some(OutputFileContainer { container_url: u.into(), path: None }),
            ..Default::default()
        };
        assert!(f("../std*.txt", path("/shared/out")).validate("outputFiles[0]").is_ok());
        assert!(f("*.dat", url("http://host:8080/bucket?sig=1")).validate("outputFiles[0]").is_ok());
        assert_eq!(OutputFileDestination::store_name("run1-", "sub/a b.txt", true), "run1-sub.a_b.txt");
        assert_eq!(OutputFileDestination::store_name("result.txt", "ignored", false), "result.txt");
        for (bad, words) in [
            (f("../../x", path("/o")), "no further"),
            (f("/etc/passwd", path("/o")), "must be relative"),
            (f("a/../b", path("/o")), "must be relative"),
            (f("*", path("rel")), "absolute path"),
            (f("*", url("https://host/b")), "plain HTTP"),
            (f("*", OutputFileDestination::default()), "exactly one"),
            (f("*", OutputFileDestination { uploaded_file: Some("a/b".into()), ..Default::default() }), "uploadedFile"),
            (f("*", OutputFileDestination { uploaded_file: Some("x".into()), ..path("/o") }), "exactly one"),
        ] {
            let e = bad.validate("outputFiles[1]").unwrap_err();
            assert!(e.starts_with("outputFiles[1]") && e.contains(words), "{e}");
        }
    }
}
