//! The head's registry of application packages (what `STATE_DIR/applications/` holds, kept
//! in memory): checking the references of pools and tasks, and resolving them when a task
//! starts into the packages its node unpacks.

use gangway_api::*;

use super::HeadState;
use crate::head::error::ApiError;

fn not_found(why: String) -> ApiError {
    ApiError::invalid_code("InvalidApplicationPackageReferences", why)
}

impl HeadState {
    /// Puts back the registry (at start-up, from the store on disk).
    pub fn set_applications(&mut self, apps: Vec<Application>) {
        self.applications = apps.into_iter().map(|a| (a.id.clone(), a)).collect();
    }

    /// Records a version uploaded (replacing one of the same name); the first version of an
    /// application is its default until another is chosen.
    pub(crate) fn put_application_version(&mut self, id: &str, v: PackageVersion) -> Application {
        let app = self
            .applications
            .entry(id.to_owned())
            .or_insert_with(|| Application { id: id.to_owned(), ..Default::default() });
        app.versions.retain(|x| x.version != v.version);
        app.default_version.get_or_insert_with(|| v.version.clone());
        app.versions.push(v);
        app.versions.sort_by(|a, b| a.version.cmp(&b.version));
        app.clone()
    }

    /// Forgets a version (and the application with its last); the default goes with its version.
    pub(crate) fn remove_application_version(
        &mut self,
        id: &str,
        version: &str,
    ) -> Result<Option<Application>, ApiError> {
        let app = self.applications.get_mut(id).ok_or_else(|| apps_not_found(id))?;
        let before = app.versions.len();
        app.versions.retain(|x| x.version != version);
        if app.versions.len() == before {
            return Err(versions_not_found(id, version));
        }
        if app.default_version.as_deref() == Some(version) {
            app.default_version = None;
        }
        if app.versions.is_empty() {
            self.applications.remove(id);
            return Ok(None);
        }
        Ok(Some(app.clone()))
    }

    /// Sets an application's default version (one of its versions).
    pub(crate) fn set_default_version(&mut self, id: &str, version: &str) -> Result<Application, ApiError> {
        let app = self.applications.get_mut(id).ok_or_else(|| apps_not_found(id))?;
        if !app.versions.iter().any(|x| x.version == version) {
            return Err(versions_not_found(id, version));
        }
        app.default_version = Some(version.to_owned());
        Ok(app.clone())
    }

    /// The packages `refs` name, as they are now; the error names the first that cannot be had.
    pub(crate) fn resolve_packages(
        &self,
        refs: &[ApplicationPackageReference],
        field: &str,
    ) -> Result<Vec<PackageToInstall>, ApiError> {
        refs.iter()
            .enumerate()
            .map(|(i, r)| {
                let app = self.applications.get(&r.application_id).ok_or_else(|| {
                    not_found(format!("{field}[{i}]: application '{}' has no package (upload one with PUT /applications/{}/versions/V)", r.application_id, r.application_id))
                })?;
                let version = match (&r.version, &app.default_version) {
                    (Some(v), _) => v.clone(),
                    (None, Some(d)) => d.clone(),
                    (None, None) => {
                        return Err(not_found(format!(
                            "{field}[{i}]: application '{}' has no default version; name one",
                            r.application_id
                        )))
                    }
                };
                let v = app.versions.iter().find(|x| x.version == version).ok_or_else(|| {
                    not_found(format!("{field}[{i}]: application '{}' has no version '{version}'", r.application_id))
                })?;
                Ok(PackageToInstall {
                    application_id: r.application_id.clone(),
                    version,
                    format: v.format,
                    sha256: v.sha256.clone(),
                    default: r.version.is_none(),
                })
            })
            .collect()
    }

    /// What a task of pool `pool` with `refs` unpacks when it starts: the pool's packages and
    /// its own, as they are now (one that went away since it was checked stays in, without a
    /// digest, and fails the attempt on its node).
    pub(crate) fn packages_for(&self, pool: &str, refs: &[ApplicationPackageReference]) -> Vec<PackageToInstall> {
        let pool_refs =
            self.pools.get(pool).map(|p| p.wire.application_package_references.as_slice()).unwrap_or_default();
        pool_refs
            .iter()
            .chain(refs)
            .map(|r| {
                self.resolve_packages(std::slice::from_ref(r), "applicationPackageReferences")
                    .map(|mut v| v.remove(0))
                    .unwrap_or_else(|_| PackageToInstall {
                        application_id: r.application_id.clone(),
                        version: r.version.clone().unwrap_or_default(),
                        format: PackageFormat::TarGz,
                        sha256: String::new(),
                        default: r.version.is_none(),
                    })
            })
            .collect()
    }
}

pub(crate) fn apps_not_found(id: &str) -> ApiError {
    ApiError::not_found("ApplicationNotFound", format!("application '{id}' has no package"))
}

pub(crate) fn versions_not_found(id: &str, version: &str) -> ApiError {
    ApiError::not_found("ApplicationPackageNotFound", format!("application '{id}' has no version '{version}'"))
}
