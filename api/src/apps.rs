//! Application packages: versioned archives uploaded to the head, unpacked once per node.

use serde::{Deserialize, Serialize};

/// `applicationPackageReferences` entry of a pool or a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationPackageReference {
    /// The application.
    pub application_id: String,
    /// Its version (absent: the application's default version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `zip` or `tar.gz`, as found in the upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PackageFormat {
    /// A zip archive.
    #[serde(rename = "zip")]
    Zip,
    /// A gzip-compressed tar archive.
    #[serde(rename = "tar.gz")]
    TarGz,
}

impl PackageFormat {
    /// The format of an archive starting with `head`, if it is one gangway unpacks.
    pub fn sniff(head: &[u8]) -> Option<PackageFormat> {
        if head.starts_with(b"PK\x03\x04") {
            Some(PackageFormat::Zip)
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Some(PackageFormat::TarGz)
        } else {
            None
        }
    }
}

/// One uploaded version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageVersion {
    /// The version.
    pub version: String,
    /// Its archive's format.
    pub format: PackageFormat,
    /// The SHA-256 of the archive, in hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// `GET /applications/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// Its id.
    pub id: String,
    /// Its versions.
    pub versions: Vec<PackageVersion>,
    /// The version a reference without one gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_version: Option<String>,
}

/// The body of `PATCH /applications/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationPatchParameter {
    /// The new default version (one of its versions).
    pub default_version: String,
}

/// A package an attempt needs on its node (resolved by the head when it starts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageToInstall {
    /// The application.
    pub application_id: String,
    /// The version.
    pub version: String,
    /// Its archive's format.
    pub format: PackageFormat,
    /// Its archive's SHA-256, in hex (the node checks it, and unpacks each once).
    pub sha256: String,
    /// Whether it was asked for without a version (it also gets `AZ_BATCH_APP_PACKAGE_<ID>`).
    #[serde(default)]
    pub default: bool,
}

impl PackageToInstall {
    /// The environment variable naming where it is unpacked: `AZ_BATCH_APP_PACKAGE_<ID>_<VERSION>`
    /// (upper case, other characters as `_`), or without the version for a default one.
    pub fn env_names(&self) -> Vec<String> {
        let clean = |s: &str| {
            s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect::<String>()
        };
        let mut names = vec![format!("AZ_BATCH_APP_PACKAGE_{}_{}", clean(&self.application_id), clean(&self.version))];
        if self.default {
            names.push(format!("AZ_BATCH_APP_PACKAGE_{}", clean(&self.application_id)));
        }
        names
    }

    /// The directory it is unpacked in, under the node's `applications/`.
    pub fn dir_name(&self) -> String {
        let short = &self.sha256[..self.sha256.len().min(16)];
        format!("{}#{}#{short}", self.application_id, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_formats() {
        let p = PackageToInstall {
            application_id: "blender".into(),
            version: "2.7-b".into(),
            format: PackageFormat::TarGz,
            sha256: "ab".repeat(32),
            default: true,
        };
        assert_eq!(p.env_names(), ["AZ_BATCH_APP_PACKAGE_BLENDER_2_7_B", "AZ_BATCH_APP_PACKAGE_BLENDER"]);
        assert_eq!(p.dir_name(), "blender#2.7-b#abababababababab");
        assert_eq!(PackageFormat::sniff(b"PK\x03\x04rest"), Some(PackageFormat::Zip));
        assert_eq!(PackageFormat::sniff(&[0x1f, 0x8b, 8]), Some(PackageFormat::TarGz));
        assert_eq!(PackageFormat::sniff(b"#!/bin/sh"), None);
    }
}
