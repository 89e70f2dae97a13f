//! The typed client: every REST call the CLI, the Slurm front door and the benchmarks make.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::common::{ErrorBody, ListResponse};
use crate::files::UploadedFile;
use crate::http::{encode_component, HttpClient, HttpError, Response};
use crate::job::{Job, JobAddParameter, JobTerminateParameter, TaskCountsResult};
use crate::node::{ComputeNode, ComputeNodeDeallocationOption, NodeDisableSchedulingParameter};
use crate::pool::{NodeRemoveParameter, Pool, PoolAddParameter};
use crate::task::{NodeFile, Task, TaskAddCollectionParameter, TaskAddCollectionResult, TaskAddParameter};

/// Where a cluster is and the token to use: the contents of `client.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientConfig {
    /// Base URL of the head's REST API.
    pub url: String,
    /// Bearer token.
    pub token: String,
    /// The head's Unix socket, for clients on its machine (tried before `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    /// Authenticate each request with a fresh MUNGE credential from the `munged` at this
    /// socket ("" for munge's default) instead of a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub munge: Option<String>,
    /// The cluster CA's certificate, which an `https` head is checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

/// The Authorization header of `auth` (`Bearer TOKEN`), unless there is no token (on the
/// head's socket the kernel names the caller).
fn auth_header(auth: &str) -> Option<(&'static str, &str)> {
    (auth.len() > "Bearer ".len()).then_some(("Authorization", auth))
}

/// A fresh MUNGE credential (no payload) from the munged at `socket` ("" for munge's
/// default): it names the calling user to whoever decodes it with the same key, once.
pub fn munge_credential(socket: &str) -> Result<String, String> {
    let mut cmd = std::process::Command::new("munge");
    cmd.arg("--no-input");
    if !socket.is_empty() {
        cmd.arg("--socket").arg(socket);
    }
    let out = cmd.stdin(std::process::Stdio::null()).output().map_err(|e| {
        format!(
            "no GANGWAY_TOKEN, and MUNGE credentials need the munge command ({e}); install munge or set GANGWAY_TOKEN"
        )
    })?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(format!("no GANGWAY_TOKEN, and munge failed: {}", why.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The head's Unix socket, in its state directory.
pub const SOCKET_FILE: &str = "head.sock";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The head could not be reached or answered garbage.
    #[error("talking to the head at {url}: {source}")]
    Http {
        /// The head's URL.
        url: String,
        /// What went wrong.
        #[source]
        source: HttpError,
    },
    /// The head refused the call.
    #[error("{status} {}: {}", .body.code, .body.message.value)]
    Api {
        /// HTTP status.
        status: u16,
        /// Azure-style error body.
        body: ErrorBody,
    },
    /// The head's answer did not parse.
    #[error("unexpected answer from the head ({status}): {message}")]
    Decode {
        /// HTTP status.
        status: u16,
        /// What did not parse.
        message: String,
    },
    /// No cluster could be found.
    #[error("{0}")]
    Config(String),
}

impl ClientError {
    /// The HTTP status when the head answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl ClientConfig {
    /// The default state directory: `$XDG_STATE_HOME/gangway`, else `~/.local/state/gangway`.
    pub fn default_state_dir() -> PathBuf {
        if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
            return PathBuf::from(x).join("gangway");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        PathBuf::from(home).join(".local/state/gangway")
    }

    /// Reads `DIR/client.json`.
    pub fn from_state_dir(dir: &Path) -> Result<ClientConfig, ClientError> {
        let path = dir.join("client.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ClientError::Config(format!(
                "no cluster found: cannot read {} ({e}); start one with `gangway up`, or set GANGWAY_URL and GANGWAY_TOKEN",
                path.display()
            ))
        })?;
        serde_json::from_str(&text).map_err(|e| ClientError::Config(format!("{} is not valid: {e}", path.display())))
    }

    /// A client of the head's Unix socket at `socket`, with no token: the head knows the
    /// caller from the socket (a user who cannot read `client.json`).
    pub fn socket_only(socket: PathBuf) -> ClientConfig {
        ClientConfig {
            url: "http://localhost".into(),
            token: String::new(),
            socket: Some(socket),
            munge: None,
            ca: None,
        }
    }

    /// Finds the cluster: `GANGWAY_URL` + `GANGWAY_TOKEN`, or `GANGWAY_URL` alone with MUNGE
    /// credentials (from `GANGWAY_MUNGE_SOCKET`'s munged, else munge's default), both with the
    /// cluster CA in `GANGWAY_CA` for an `https` URL, else `GANGWAY_SOCKET`, else
    /// `state_dir` (from `--state-dir` or `GANGWAY_STATE_DIR`), else the default state
    /// directory. In a state directory, `client.json` when the caller may read it (the admin
    /// token), else the head's socket there (as the caller's own user).
    pub fn discover(state_dir: Option<&Path>) -> Result<ClientConfig, ClientError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let ca = env("GANGWAY_CA").map(PathBuf::from);
        match (env("GANGWAY_URL"), env("GANGWAY_TOKEN")) {
            (Some(url), Some(token)) => return Ok(ClientConfig { url, token, socket: None, munge: None, ca }),
            // No token: MUNGE names the caller, as it does for Slurm's commands.
            (Some(url), None) => {
                let munge = Some(env("GANGWAY_MUNGE_SOCKET").unwrap_or_default());
                return Ok(ClientConfig { url, token: String::new(), socket: None, munge, ca });
            }
            _ => {}
        }
        if let Some(socket) = env("GANGWAY_SOCKET") {
            return Ok(ClientConfig::socket_only(socket.into()));
        }
        let dir = state_dir.map(Path::to_path_buf).or_else(|| env("GANGWAY_STATE_DIR").map(PathBuf::from));
        let dir = dir.unwrap_or_else(ClientConfig::default_state_dir);
        match ClientConfig::from_state_dir(&dir) {
            Err(_) if dir.join(SOCKET_FILE).exists() => Ok(ClientConfig::socket_only(dir.join(SOCKET_FILE))),
            found => found,
        }
    }
}

/// A connection to one head.
pub struct Client {
    http: HttpClient,
    auth: String,
    /// Make a MUNGE credential per request (the munged socket; "" for the default).
    munge: Option<String>,
    /// How long a call keeps retrying a head that does not answer (Slurm's `MessageTimeout`).
    retry_for: std::time::Duration,
}

/// The header that makes a mutating request idempotent: the head does it once and answers a
/// repeat (the same id, the same request) with the first answer.
pub const REQUEST_ID_HEADER: &str = "client-request-id";

/// The variable that sets how long clients retry a head that does not answer, in seconds.
pub const MESSAGE_TIMEOUT_ENV: &str = "GANGWAY_MESSAGE_TIMEOUT";

/// Clients retry a head that does not answer for this long unless told otherwise (Slurm's
/// default `MessageTimeout`).
pub const DEFAULT_MESSAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A fresh request id: 16 random bytes as a UUID's 8-4-4-4-12 hex groups.
pub fn new_request_id() -> String {
    let hex = crate::common::random_hex(16).unwrap_or_else(|_| {
        // No /dev/urandom: the time and the process still make a one-off id.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        format!("{:016x}{:08x}{:08x}", t.as_nanos() as u64, std::process::id(), t.subsec_nanos())
    });
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Whether `id` is a request id the head accepts: a UUID's shape (8-4-4-4-12 hex digits).
pub fn valid_request_id(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether a failed exchange may be tried again: the head was down or restarting (refused,
/// reset, closed); a request that may have been done is tried again only when it is
/// idempotent (a read, or one carrying a request id).
fn retryable(e: &HttpError, idempotent: bool) -> bool {
    use std::io::ErrorKind::*;
    match e {
        // Nothing was sent yet: a head that refused, or died during the TLS handshake.
        HttpError::Connect { source, .. } => matches!(
            source.kind(),
            ConnectionRefused | NotFound | ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
        ),
        HttpError::Io(source) => {
            idempotent && matches!(source.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof)
        }
        HttpError::Protocol(_) => idempotent,
        HttpError::BadUrl(_) => false,
    }
}

/// A `$filter` and paging for list calls.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// OData filter.
    pub filter: Option<String>,
    /// Page size (≤ 1000).
    pub max_results: Option<u32>,
}

impl Client {
    /// A client for `config`.
    pub fn new(config: &ClientConfig) -> Result<Client, ClientError> {
        let mut http =
            HttpClient::new(&config.url).map_err(|source| ClientError::Http { url: config.url.clone(), source })?;
        if let Some(socket) = &config.socket {
            http = http.with_unix_socket(socket);
        }
        match &config.ca {
            Some(ca) => http = http.with_tls(crate::tls::client_config_from_file(ca).map_err(ClientError::Config)?),
            // Refused here, once, rather than at each call (a client on the head's socket never needs it).
            None if config.socket.is_none()
                && config.url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")) =>
            {
                return Err(ClientError::Config(format!(
                    "{} is https: the cluster's CA certificate is needed (set GANGWAY_CA to a copy of the head's STATE_DIR/{})",
                    config.url,
                    crate::tls::CA_PATH
                )));
            }
            None => {}
        }
        let retry_for = std::env::var(MESSAGE_TIMEOUT_ENV)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(DEFAULT_MESSAGE_TIMEOUT, std::time::Duration::from_secs_f64);
        Ok(Client { http, auth: format!("Bearer {}", config.token), munge: config.munge.clone(), retry_for })
    }

    /// `Munge CREDENTIAL` for one request, when the client authenticates with MUNGE.
    fn munge_header(&self) -> Result<Option<String>, ClientError> {
        let Some(socket) = &self.munge else { return Ok(None) };
        munge_credential(socket).map(|c| Some(format!("Munge {c}"))).map_err(ClientError::Config)
    }

    /// How long calls keep retrying a head that does not answer (default
    /// [`DEFAULT_MESSAGE_TIMEOUT`], or `GANGWAY_MESSAGE_TIMEOUT` seconds); zero: not at all.
    pub fn with_retry(mut self, for_: std::time::Duration) -> Self {
        self.retry_for = for_;
        self
    }

    /// Sends one request and returns the raw response (errors only for transport failures).
    /// A mutating request carries a fresh request id (unless `extra` names one), so it can
    /// be retried safely: while the head refuses connections, drops them, or answers 503,
    /// the call tries again with backoff for up to the retry time, saying so once on a
    /// terminal.
    pub fn raw(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        extra: &[(&str, &str)],
    ) -> Result<Response, ClientError> {
        let read = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
        let given = extra.iter().any(|(k, _)| k.eq_ignore_ascii_case(REQUEST_ID_HEADER));
        let id = (!read && !given).then(new_request_id);
        let idempotent = read || given || id.is_some();
        let deadline = std::time::Instant::now() + self.retry_for;
        let mut delay = std::time::Duration::from_millis(50);
        let mut said = false;
        loop {
            // A MUNGE credential is good once: each try makes its own.
            let munge = self.munge_header()?;
            let mut headers: Vec<(&str, &str)> = auth_header(&self.auth).into_iter().collect();
            headers.extend(munge.as_deref().map(|m| ("Authorization", m)));
            headers.push(("Content-Type", "application/json"));
            headers.extend(id.as_deref().map(|i| (REQUEST_ID_HEADER, i)));
            headers.extend_from_slice(extra);
            let outcome = self.http.request(method, path, &headers, body);
            let why = match &outcome {
                Ok(r) if r.status == 503 => Some("it answered 503, unavailable".to_owned()),
                Err(e) if retryable(e, idempotent) => Some(e.to_string()),
                _ => None,
            };
            let now = std::time::Instant::now();
            let Some(why) = why.filter(|_| now < deadline) else {
                return outcome.map_err(|source| ClientError::Http { url: self.http.base_url().to_owned(), source });
            };
            if !said && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprintln!(
                    "gangway: the head at {} is not answering ({why}); retrying for up to {} s",
                    self.http.base_url(),
                    self.retry_for.as_secs()
                );
                said = true;
            }
            std::thread::sleep(delay.min(deadline - now));
            delay = (delay * 2).min(std::time::Duration::from_secs(1));
        }
    }

    fn call<T: DeserializeOwned>(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("wire types serialize"));
        let resp = self.raw(method, path, bytes.as_deref(), &[])?;
        decode(resp)
    }

    fn call_empty(&mut self, method: &str, path: &str, body: Option<&impl Serialize>) -> Result<(), ClientError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("wire types serialize"));
        let resp = self.raw(method, path, bytes.as_deref(), &[])?;
        check(resp).map(|_| ())
    }

    fn list_all<T: DeserializeOwned>(&mut self, path: &str, opts: &ListOptions) -> Result<Vec<T>, ClientError> {
        let mut query = Vec::new();
        if let Some(f) = &opts.filter {
            query.push(format!("$filter={}", encode_component(f)));
        }
        if let Some(m) = opts.max_results {
            query.push(format!("maxresults={m}"));
        }
        let mut next = if query.is_empty() { path.to_owned() } else { format!("{path}?{}", query.join("&")) };
        let mut out = Vec::new();
        loop {
            let page: ListResponse<T> = self.call(GET, &next, None::<&()>)?;
            out.extend(page.value);
            match page.next_link {
                // Links are absolute; keep the path and query.
                Some(link) => next = strip_origin(&link).to_owned(),
                None => return Ok(out),
            }
        }
    }

    /// `POST /pools`.
    pub fn add_pool(&mut self, p: &PoolAddParameter) -> Result<(), ClientError> {
        self.call_empty("POST", "/pools", Some(p))
    }
    /// `GET /pools`.
    pub fn list_pools(&mut self) -> Result<Vec<Pool>, ClientError> {
        self.list_all("/pools", &ListOptions::default())
    }
    /// `GET /pools/{id}`.
    pub fn get_pool(&mut self, id: &str) -> Result<Pool, ClientError> {
        self.call(GET, &format!("/pools/{}", encode_component(id)), None::<&()>)
    }
    /// `DELETE /pools/{id}`.
    pub fn delete_pool(&mut self, id: &str) -> Result<(), ClientError> {
        self.call_empty("DELETE", &format!("/pools/{}", encode_component(id)), None::<&()>)
    }
    /// `POST /jobs`.
    pub fn add_job(&mut self, j: &JobAddParameter) -> Result<(), ClientError> {
        self.call_empty("POST", "/jobs", Some(j))
    }
    /// `GET /jobs`.
    pub fn list_jobs(&mut self, opts: &ListOptions) -> Result<Vec<Job>, ClientError> {
        self.list_all("/jobs", opts)
    }
    /// `GET /jobs/{id}`.
    pub fn get_job(&mut self, id: &str) -> Result<Job, ClientError> {
        self.call(GET, &job_path(id), None::<&()>)
    }
    /// `PATCH /jobs/{id}`.
    pub fn patch_job(&mut self, id: &str, patch: &impl Serialize) -> Result<(), ClientError> {
        self.call_empty("PATCH", &job_path(id), Some(patch))
    }
    /// `POST /jobs/{id}/terminate`.
    pub fn terminate_job(&mut self, id: &str, reason: Option<String>) -> Result<(), ClientError> {
        self.call_empty(
            "POST",
            &format!("{}/terminate", job_path(id)),
            Some(&JobTerminateParameter { terminate_reason: reason }),
        )
    }
    /// `PUT /jobs/{id}`: every updatable property replaced.
    pub fn update_job(&mut self, id: &str, p: &crate::job::JobUpdateParameter) -> Result<(), ClientError> {
        self.call_empty("PUT", &job_path(id), Some(p))
    }
    /// `PUT /jobs/{id}/tasks/{tid}`: new constraints.
    pub fn update_task(
        &mut self,
        job: &str,
        task: &str,
        p: &crate::task::TaskUpdateParameter,
    ) -> Result<(), ClientError> {
        self.call_empty("PUT", &task_path(job, task), Some(p))
    }
    /// `POST /jobs/{id}/tasks/{tid}/reactivate`.
    pub fn reactivate_task(&mut self, job: &str, task: &str) -> Result<(), ClientError> {
        self.call_empty("POST", &format!("{}/reactivate", task_path(job, task)), None::<&()>)
    }
    /// `DELETE /jobs/{id}/tasks/{tid}`.
    pub fn delete_task(&mut self, job: &str, task: &str) -> Result<(), ClientError> {
        self.call_empty("DELETE", &task_path(job, task), None::<&()>)
    }
    /// `GET /applications`.
    pub fn list_applications(&mut self) -> Result<Vec<crate::apps::Application>, ClientError> {
        self.list_all("/applications", &ListOptions::default())
    }
    /// `PUT /applications/{id}/versions/{v}`: the archive (zip or tar.gz); admins only.
    pub fn upload_application(&mut self, id: &str, version: &str, archive: &[u8]) -> Result<(), ClientError> {
        let path = format!("/applications/{}/versions/{}", encode_component(id), encode_component(version));
        let resp = self.raw("PUT", &path, Some(archive), &[("Content-Type", "application/octet-stream")])?;
        check(resp).map(|_| ())
    }
    /// `PATCH /applications/{id}`: its default version.
    pub fn set_default_version(&mut self, id: &str, version: &str) -> Result<(), ClientError> {
        let body = crate::apps::ApplicationPatchParameter { default_version: version.to_owned() };
        self.call_empty("PATCH", &format!("/applications/{}", encode_component(id)), Some(&body))
    }
    /// `DELETE /applications/{id}/versions/{v}`.
    pub fn delete_application_version(&mut self, id: &str, version: &str) -> Result<(), ClientError> {
        let path = format!("/applications/{}/versions/{}", encode_component(id), encode_component(version));
        self.call_empty("DELETE", &path, None::<&()>)
    }
    /// `POST /jobschedules`.
    pub fn add_schedule(&mut self, p: &crate::schedule::JobScheduleAddParameter) -> Result<(), ClientError> {
        self.call_empty("POST", "/jobschedules", Some(p))
    }
    /// `GET /jobschedules`.
    pub fn list_schedules(&mut self, opts: &ListOptions) -> Result<Vec<crate::schedule::JobSchedule>, ClientError> {
        self.list_all("/jobschedules", opts)
    }
    /// `GET /jobschedules/{id}`.
    pub fn get_schedule(&mut self, id: &str) -> Result<crate::schedule::JobSchedule, ClientError> {
        self.call(GET, &format!("/jobschedules/{}", encode_component(id)), None::<&()>)
    }
    /// `POST /jobschedules/{id}/{action}`: `disable`, `enable` or `terminate`.
    pub fn schedule_action(&mut self, id: &str, action: &str) -> Result<(), ClientError> {
        self.call_empty("POST", &format!("/jobschedules/{}/{action}", encode_component(id)), None::<&()>)
    }
    /// `DELETE /jobschedules/{id}`: the schedule and its jobs.
    pub fn delete_schedule(&mut self, id: &str) -> Result<(), ClientError> {
        self.call_empty("DELETE", &format!("/jobschedules/{}", encode_component(id)), None::<&()>)
    }
    /// `POST /jobs/{id}/disable`.
    pub fn disable_job(&mut self, id: &str, how: crate::job::DisableJobOption) -> Result<(), ClientError> {
        let body = crate::job::JobDisableParameter { disable_tasks: how };
        self.call_empty("POST", &format!("{}/disable", job_path(id)), Some(&body))
    }
    /// `POST /jobs/{id}/enable`.
    pub fn enable_job(&mut self, id: &str) -> Result<(), ClientError> {
        self.call_empty("POST", &format!("{}/enable", job_path(id)), None::<&()>)
    }
    /// `DELETE /jobs/{id}`.
    pub fn delete_job(&mut self, id: &str) -> Result<(), ClientError> {
        self.call_empty("DELETE", &job_path(id), None::<&()>)
    }
    /// `POST /tokens`: a new API token acting as the caller (its secret is in the answer only).
    pub fn create_token(
        &mut self,
        p: &crate::tokens::TokenAddParameter,
    ) -> Result<crate::tokens::ApiToken, ClientError> {
        self.call("POST", "/tokens", Some(p))
    }
    /// `POST /jointokens` (admins): a join token for new nodes (its secret is in the answer only).
    pub fn create_join_token(
        &mut self,
        p: &crate::tokens::JoinTokenAddParameter,
    ) -> Result<crate::tokens::JoinToken, ClientError> {
        self.call("POST", "/jointokens", Some(p))
    }
    /// A join token for `uses` nodes, written to `path` (0600), for launchers started here
    /// (`gangway-node --join-token-file PATH`).
    pub fn write_join_token(&mut self, uses: u32, path: &Path) -> Result<(), ClientError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let p = crate::tokens::JoinTokenAddParameter { uses: Some(uses.max(1)), ..Default::default() };
        let token = self.create_join_token(&p)?.token.unwrap_or_default();
        let fail = |e: std::io::Error| ClientError::Config(format!("writing {}: {e}", path.display()));
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(fail)?;
        f.write_all(token.as_bytes()).map_err(fail)
    }
    /// `GET /tokens`: the caller's tokens (every user's for an admin).
    pub fn list_tokens(&mut self) -> Result<Vec<crate::tokens::ApiToken>, ClientError> {
        self.list_all("/tokens", &ListOptions::default())
    }
    /// `DELETE /tokens/{id}`: revokes a token.
    pub fn revoke_token(&mut self, id: &str) -> Result<(), ClientError> {
        self.call_empty("DELETE", &format!("/tokens/{}", encode_component(id)), None::<&()>)
    }
    /// `GET /jobs/{id}/taskcounts`.
    pub fn task_counts(&mut self, id: &str) -> Result<TaskCountsResult, ClientError> {
        self.call(GET, &format!("{}/taskcounts", job_path(id)), None::<&()>)
    }
    /// `POST /jobs/{id}/tasks`.
    pub fn add_task(&mut self, job: &str, t: &TaskAddParameter) -> Result<(), ClientError> {
        self.call_empty("POST", &format!("{}/tasks", job_path(job)), Some(t))
    }
    /// `POST /jobs/{id}/addtaskcollection`.
    pub fn add_task_collection(
        &mut self,
        job: &str,
        tasks: Vec<TaskAddParameter>,
    ) -> Result<TaskAddCollectionResult, ClientError> {
        self.call(
            "POST",
            &format!("{}/addtaskcollection", job_path(job)),
            Some(&TaskAddCollectionParameter { value: tasks }),
        )
    }
    /// `GET /jobs/{id}/tasks`.
    pub fn list_tasks(&mut self, job: &str, opts: &ListOptions) -> Result<Vec<Task>, ClientError> {
        self.list_all(&format!("{}/tasks", job_path(job)), opts)
    }
    /// `GET /jobs/{id}/tasks/{tid}`.
    pub fn get_task(&mut self, job: &str, task: &str) -> Result<Task, ClientError> {
        self.call(GET, &task_path(job, task), None::<&()>)
    }
    /// `POST /jobs/{id}/tasks/{tid}/terminate`.
    pub fn terminate_task(&mut self, job: &str, task: &str) -> Result<(), ClientError> {
        self.call_empty("POST", &format!("{}/terminate", task_path(job, task)), None::<&()>)
    }
    /// `GET /jobs/{id}/tasks/{tid}/files`.
    pub fn list_task_files(&mut self, job: &str, task: &str) -> Result<Vec<NodeFile>, ClientError> {
        self.list_all(&format!("{}/files?recursive=true", task_path(job, task)), &ListOptions::default())
    }
    /// `GET /jobs/{id}/tasks/{tid}/files/{path}` from byte `offset` on.
    pub fn get_task_file(&mut self, job: &str, task: &str, path: &str, offset: u64) -> Result<Vec<u8>, ClientError> {
        let url = format!(
            "{}/files/{}",
            task_path(job, task),
            path.split('/').map(encode_component).collect::<Vec<_>>().join("/")
        );
        let range = format!("bytes={offset}-");
        let extra: &[(&str, &str)] = if offset > 0 { &[("Range", range.as_str())] } else { &[] };
        let resp = self.raw(GET, &url, None, extra)?;
        if resp.status == 416 {
            return Ok(Vec::new());
        }
        Ok(check(resp)?.body)
    }
    /// `GET /nodecounts`: each pool's nodes by state.
    pub fn pool_node_counts(&mut self) -> Result<Vec<crate::PoolNodeCounts>, ClientError> {
        self.list_all("/nodecounts", &ListOptions::default())
    }
    /// `GET /pools/{pool}/nodes` for every pool, or `GET /nodes` when `pool` is None.
    pub fn list_nodes(&mut self, pool: Option<&str>) -> Result<Vec<ComputeNode>, ClientError> {
        match pool {
            Some(p) => self.list_all(&format!("/pools/{}/nodes", encode_component(p)), &ListOptions::default()),
            None => self.list_all("/nodes", &ListOptions::default()),
        }
    }
    /// `GET /nodes/{id}`.
    pub fn get_node(&mut self, id: &str) -> Result<ComputeNode, ClientError> {
        self.call(GET, &format!("/nodes/{}", encode_component(id)), None::<&()>)
    }
    /// `POST /pools/{pool}/nodes/{node}/disablescheduling`.
    pub fn disable_node_scheduling(
        &mut self,
        pool: &str,
        node: &str,
        option: Option<ComputeNodeDeallocationOption>,
    ) -> Result<(), ClientError> {
        let body = NodeDisableSchedulingParameter { node_disable_scheduling_option: option };
        self.call_empty("POST", &format!("{}/disablescheduling", pool_node_path(pool, node)), Some(&body))
    }
    /// `POST /pools/{pool}/nodes/{node}/enablescheduling`.
    pub fn enable_node_scheduling(&mut self, pool: &str, node: &str) -> Result<(), ClientError> {
        self.call_empty("POST", &format!("{}/enablescheduling", pool_node_path(pool, node)), None::<&()>)
    }
    /// `PUT /files/{name}`: stores `data` in the head's file store under `name`.
    pub fn put_file(&mut self, name: &str, data: &[u8]) -> Result<(), ClientError> {
        let munge = self.munge_header()?;
        let mut headers: Vec<(&str, &str)> = auth_header(&self.auth).into_iter().collect();
        headers.extend(munge.as_deref().map(|m| ("Authorization", m)));
        headers.push(("Content-Type", "application/octet-stream"));
        let resp = self
            .http
            .request("PUT", &file_path(name), &headers, Some(data))
            .map_err(|source| ClientError::Http { url: self.http.base_url().to_owned(), source })?;
        check(resp).map(|_| ())
    }
    /// `GET /files`: the files in the head's file store.
    pub fn list_files(&mut self) -> Result<Vec<UploadedFile>, ClientError> {
        self.list_all("/files", &ListOptions::default())
    }
    /// `GET /files/{name}`: a stored file's bytes.
    pub fn get_file(&mut self, name: &str) -> Result<Vec<u8>, ClientError> {
        Ok(check(self.raw(GET, &file_path(name), None, &[])?)?.body)
    }
    /// `DELETE /files/{name}`.
    pub fn delete_file(&mut self, name: &str) -> Result<(), ClientError> {
        self.call_empty("DELETE", &file_path(name), None::<&()>)
    }
    /// `POST /pools/{pool}/removenodes`.
    pub fn remove_nodes(
        &mut self,
        pool: &str,
        nodes: &[String],
        option: Option<ComputeNodeDeallocationOption>,
    ) -> Result<(), ClientError> {
        let body = NodeRemoveParameter { node_list: nodes.to_vec(), node_deallocation_option: option };
        self.call_empty("POST", &format!("/pools/{}/removenodes", encode_component(pool)), Some(&body))
    }
    /// `POST /slurm/jobs`: one sbatch.
    pub fn slurm_submit(&mut self, s: &crate::slurm::SlurmSubmit) -> Result<crate::slurm::SlurmSubmitted, ClientError> {
        self.call("POST", "/slurm/jobs", Some(s))
    }
    /// `GET /slurm/jobs`: every Slurm job.
    pub fn slurm_jobs(&mut self) -> Result<crate::slurm::SlurmJobList, ClientError> {
        self.call(GET, "/slurm/jobs", None::<&()>)
    }
    /// `GET /slurm/jobs?accounting=true`: the Slurm jobs sacct may show the caller (its own,
    /// or every job for an admin).
    pub fn slurm_accounting(&mut self) -> Result<crate::slurm::SlurmJobList, ClientError> {
        self.call(GET, "/slurm/jobs?accounting=true", None::<&()>)
    }
    /// `GET /slurm/jobs/{id}`: one Slurm job or array element.
    pub fn slurm_job(&mut self, id: u64) -> Result<crate::slurm::SlurmJob, ClientError> {
        self.call(GET, &format!("/slurm/jobs/{id}"), None::<&()>)
    }
    /// `GET /slurm/priorities`: the waiting Slurm jobs' priority factors (sprio).
    pub fn slurm_priorities(&mut self) -> Result<crate::slurm::PriorityList, ClientError> {
        self.call(GET, "/slurm/priorities", None::<&()>)
    }
    /// `GET /slurm/shares`: the fair-share tree (sshare).
    pub fn slurm_shares(&mut self) -> Result<crate::slurm::ShareList, ClientError> {
        self.call(GET, "/slurm/shares", None::<&()>)
    }
    /// `POST /slurm/cancel`: scancel.
    pub fn slurm_cancel(&mut self, c: &crate::slurm::SlurmCancel) -> Result<crate::slurm::SlurmCancelled, ClientError> {
        self.call("POST", "/slurm/cancel", Some(c))
    }
    /// `POST /slurm/jobs/{spec}/{action}`: `hold`, `release` or `requeue` of `N` or `N_i`.
    pub fn slurm_control(&mut self, spec: &str, action: &str) -> Result<(), ClientError> {
        self.call_empty("POST", &format!("/slurm/jobs/{}/{action}", encode_component(spec)), None::<&()>)
    }
    /// `POST /slurm/jobs/{spec}/update`: `scontrol update`.
    pub fn slurm_update(&mut self, spec: &str, u: &crate::slurm::SlurmUpdate) -> Result<(), ClientError> {
        self.call_empty("POST", &format!("/slurm/jobs/{}/update", encode_component(spec)), Some(u))
    }

    /// `POST /slurm/jobs/{id}/step`: records (or updates) one of a running job's srun steps.
    pub fn slurm_step(&mut self, job: u64, step: &crate::slurm::SlurmStep) -> Result<(), ClientError> {
        self.call_empty("POST", &format!("/slurm/jobs/{job}/step"), Some(step))
    }
}

const GET: &str = "GET";

fn job_path(id: &str) -> String {
    format!("/jobs/{}", encode_component(id))
}

fn file_path(name: &str) -> String {
    format!("/files/{}", encode_component(name))
}

fn pool_node_path(pool: &str, node: &str) -> String {
    format!("/pools/{}/nodes/{}", encode_component(pool), encode_component(node))
}

fn task_path(job: &str, task: &str) -> String {
    format!("/jobs/{}/tasks/{}", encode_component(job), encode_component(task))
}

fn strip_origin(link: &str) -> &str {
    match link.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => link,
    }
}

fn check(resp: Response) -> Result<Response, ClientError> {
    if (200..300).contains(&resp.status) {
        return Ok(resp);
    }
    match serde_json::from_slice::<ErrorBody>(&resp.body) {
        Ok(body) => Err(ClientError::Api { status: resp.status, body }),
        Err(_) => Err(ClientError::Decode { status: resp.status, message: resp.text() }),
    }
}

fn decode<T: DeserializeOwned>(resp: Response) -> Result<T, ClientError> {
    let resp = check(resp)?;
    serde_json::from_slice(&resp.body).map_err(|e| ClientError::Decode { status: resp.status, message: e.to_string() })
}
