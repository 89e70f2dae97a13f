//! The REST API on bad input: every refusal has a 4xx status, an Azure-style body whose
//! message names the field, value or resource at fault, and leaves the head's state as it
//! was. Also paging, `$filter`, file paths, authentication and `/openapi.json`.

use std::time::Duration;

use gangway_api::client::{Client, ClientConfig, ListOptions};
use gangway_api::http::{encode_component, HttpClient, Response};
use gangway_api::*;
use gangway_tests::{wait_for, Cluster, Options};
use serde_json::{json, Value};

/// Asserts `resp` is an error with `status` whose message contains `needle`; returns the body.
#[track_caller]
fn expect_err(resp: Response, status: u16, needle: &str) -> ErrorBody {
    let text = resp.text();
    assert_eq!(resp.status, status, "status of the answer {text}");
    let body: ErrorBody =
        serde_json::from_slice(&resp.body).unwrap_or_else(|e| panic!("not an Azure error body ({e}): {text:?}"));
    assert_eq!(body.message.lang, "en-US", "{text}");
    assert!(!body.code.is_empty(), "{text}");
    assert!(body.message.value.contains(needle), "message {:?} does not name {needle:?}", body.message.value);
    body
}

fn send(c: &mut Client, method: &str, path: &str, body: Option<&str>) -> Response {
    c.raw(method, path, body.map(str::as_bytes), &[]).expect("the head answers")
}

fn get_json(c: &mut Client, path: &str) -> Value {
    let r = send(c, "GET", path, None);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    serde_json::from_slice(&r.body).expect("JSON")
}

/// Every pool, job and task as the API shows them.
fn snapshot(c: &mut Client) -> Value {
    let jobs = get_json(c, "/jobs");
    let ids: Vec<String> = jobs["value"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().into()).collect();
    let tasks: Vec<Value> = ids.iter().map(|j| get_json(c, &format!("/jobs/{j}/tasks"))).collect();
    json!({ "pools": get_json(c, "/pools"), "jobs": jobs, "tasks": tasks })
}

fn task_ids(c: &mut Client, job: &str, filter: Option<&str>) -> Vec<String> {
    let opts = ListOptions { filter: filter.map(Into::into), ..Default::default() };
    c.list_tasks(job, &opts).unwrap_or_else(|e| panic!("{filter:?}: {e}")).into_iter().map(|t| t.id).collect()
}

/// A pool with no nodes: its tasks stay queued.
fn add_pool(c: &mut Client, id: &str, slots: u32) {
    let r = send(c, "POST", "/pools", Some(&json!({ "id": id, "taskSlotsPerNode": slots }).to_string()));
    assert_eq!(r.status, 201, "{}", r.text());
}

fn task_body(id: &str) -> Value {
    json!({ "id": id, "commandLine": "/bin/true" })
}

/// One bad request: method, path, body, expected status, code and a word the message must hold.
struct Case {
    method: &'static str,
    path: String,
    body: Option<String>,
    status: u16,
    code: &'static str,
    needle: String,
}

fn case(method: &'static str, path: &str, body: Option<&str>, status: u16, code: &'static str, needle: &str) -> Case {
    Case { method, path: path.into(), body: body.map(Into::into), status, code, needle: needle.into() }
}

#[test]
fn bad_requests_are_refused_by_name_and_change_nothing() {
    let cluster = Cluster::start(Options { nodes: 1, ..Default::default() });
    let mut c = cluster.client();
    // A pool without nodes: its tasks stay queued, so the state is still between requests.
    add_pool(&mut c, "idle", 4);
    let idle = Some(PoolInformation { pool_id: "idle".into() });
    c.add_job(&JobAddParameter { id: "j".into(), pool_info: idle.clone(), ..Default::default() }).unwrap();
    c.add_task("j", &TaskAddParameter { id: "t1".into(), command_line: "/bin/true".into(), ..Default::default() })
        .unwrap();
    let before = snapshot(&mut c);

    let long = "x".repeat(65);
    let many: Vec<Value> = (0..101).map(|i| task_body(&format!("m{i}"))).collect();
    let many = json!({ "value": many }).to_string();
    let bad = "InvalidPropertyValue";
    let cases = [
        case("POST", "/jobs", Some(r#"{"id":"x",}"#), 400, "InvalidRequestBody", "trailing comma"),
        case("POST", "/jobs", Some(r#"{"id" "x"}"#), 400, "InvalidRequestBody", "expected `:`"),
        case("POST", "/jobs", Some(""), 400, "MissingRequiredProperty", "body is empty"),
        case("POST", "/jobs", Some(r#"{"id":"x"} {}"#), 400, "InvalidRequestBody", "trailing characters"),
        case("POST", "/jobs", Some(r#"{"id":"x","bogus":1}"#), 400, bad, "bogus"),
        case("POST", "/jobs", Some(r#"{"id":"x","priority":"high"}"#), 400, bad, "priority"),
        case("POST", "/jobs", Some(r#"{"id":"x","priority":"high"}"#), 400, bad, "\"high\""),
        case("POST", "/jobs", Some(r#"{"id":"x","priority":1001}"#), 400, bad, "priority is 1001"),
        case("POST", "/jobs", Some(r#"{"id":"x","priority":-1001}"#), 400, bad, "between -1000 and 1000"),
        case("POST", "/jobs", Some(r#"{"id":"a b"}"#), 400, bad, "job id 'a b' contains ' '"),
        case("POST", "/jobs", Some(&format!(r#"{{"id":"{long}"}}"#)), 400, bad, &format!("'{long}' must be 1 to 64")),
        case("POST", "/jobs", Some(r#"{"id":"x","poolInfo":{"poolId":"nopool"}}"#), 404, "PoolNotFound", "'nopool'"),
        case("POST", "/jobs", Some(r#"{"id":"j","poolInfo":{"poolId":"idle"}}"#), 409, "JobExists", "job 'j'"),
        case(
            "POST",
            "/jobs",
            Some(r#"{"id":"x","constraints":{"maxTaskRetryCount":-2}}"#),
            400,
            bad,
            "maxTaskRetryCount is -2",
        ),
        case("POST", "/jobs/nojob/tasks", Some(r#"{"id":"t","commandLine":"true"}"#), 404, "JobNotFound", "'nojob'"),
        case("POST", "/jobs/j/tasks", Some(r#"{"id":"t1","commandLine":"true"}"#), 409, "TaskExists", "task 't1'"),
        case("POST", "/jobs/j/tasks", Some(r#"{"id":"a b","commandLine":"true"}"#), 400, bad, "task id 'a b'"),
        case("POST", "/jobs/j/tasks", Some(r#"{"id":"t","commandLine":"true","x":1}"#), 400, bad, "`x`"),
        case(
            "POST",
            "/jobs/j/tasks",
            Some(r#"{"id":"t","commandLine":"true","requiredSlots":5}"#),
            400,
            bad,
            "requiredSlots is 5",
        ),
        case(
            "POST",
            "/jobs/j/tasks",
            Some(r#"{"id":"t","commandLine":"true","constraints":{"maxTaskRetryCount":-2}}"#),
            400,
            bad,
            "maxTaskRetryCount is -2",
        ),
        case(
            "POST",
            "/jobs/j/tasks",
            Some(r#"{"id":"t","commandLine":"true","constraints":{"maxTaskRetryCount":"3"}}"#),
            400,
            bad,
            "constraints.maxTaskRetryCount: invalid type",
        ),
        case("POST", "/jobs/j/tasks", Some(r#"{"id":"t","commandLine":"echo 'oops"}"#), 400, bad, "unterminated"),
        case("POST", "/jobs/j/addtaskcollection", Some(&many), 413, "RequestBodyTooLarge", "101 tasks"),
        case("POST", "/jobs/nojob/addtaskcollection", Some(r#"{"value":[]}"#), 404, "JobNotFound", "'nojob'"),
        case("GET", "/jobs/j/tasks?$filter=state%20eq", None, 400, bad, r#"missing operand after "eq""#),
        case("GET", "/jobs/j/tasks?$filter=foo%20eq%201", None, 400, bad, "unknown property \"foo\""),
        case("GET", "/jobs?$filter=id%20eq%20'x", None, 400, bad, "unterminated string"),
        case("GET", "/jobs/j/tasks?maxresults=0", None, 400, bad, "maxresults is '0'"),
        case("GET", "/jobs/j/tasks?maxresults=5000", None, 400, bad, "maxresults is '5000'"),
        case("GET", "/jobs?top=3", None, 400, bad, "'top'"),
        case("GET", "/jobs/nojob/tasks", None, 404, "JobNotFound", "'nojob'"),
        case("GET", "/jobs/j/tasks/nope", None, 404, "TaskNotFound", "'nope'"),
        case("POST", "/jobs/j/tasks/nope/terminate", None, 404, "TaskNotFound", "task 'nope'"),
        case("POST", "/jobs/nojob/tasks/t1/terminate", None, 404, "JobNotFound", "job 'nojob'"),
        case("POST", "/jobs/nojob/terminate", None, 404, "JobNotFound", "job 'nojob'"),
        case("DELETE", "/jobs/nojob", None, 404, "JobNotFound", "job 'nojob'"),
        case("DELETE", "/pools/nopool", None, 404, "PoolNotFound", "pool 'nopool'"),
        case("POST", "/pools", Some(r#"{"id":"p","taskSlotsPerNode":0}"#), 400, bad, "taskSlotsPerNode is 0"),
        case("POST", "/pools", Some(r#"{"id":"idle"}"#), 409, "PoolExists", "pool 'idle'"),
        case("GET", "/nope", None, 404, "ResourceNotFound", "no such resource"),
        case("GET", "/jobs/j/nope", None, 404, "ResourceNotFound", "no such resource"),
    ];
    for (i, k) in cases.iter().enumerate() {
        let resp = send(&mut c, k.method, &k.path, k.body.as_deref());
        let what = format!("case {i}: {} {} {:?}", k.method, k.path, k.body.as_deref().map(|b| &b[..b.len().min(80)]));
        let body = expect_err(resp, k.status, &k.needle);
        assert_eq!(body.code, k.code, "{what}: {}", body.message.value);
        assert_eq!(snapshot(&mut c), before, "{what} changed the state");
    }

    // Without a token, or with a wrong one: 401, and a POST creates nothing.
    let mut anon = gangway_tests::tls::http(&cluster.config);
    let mut wrong = Client::new(&ClientConfig { token: "0".repeat(64), ..cluster.config.clone() }).unwrap();
    let sneaky = br#"{"id":"sneaky"}"#;
    for (method, body) in [("GET", None), ("POST", Some(&sneaky[..]))] {
        let r = anon.request(method, "/jobs", &[("Content-Type", "application/json")], body).unwrap();
        assert_eq!(expect_err(r, 401, "Authorization").code, "AuthenticationFailed");
        let r = wrong.raw(method, "/jobs", body, &[]).unwrap();
        assert_eq!(expect_err(r, 401, "token is not valid").code, "AuthenticationFailed");
        let r = anon.request(method, "/jobs", &[("Authorization", "Basic Zm9vOmJhcg==")], body).unwrap();
        assert_eq!(expect_err(r, 401, "token").code, "AuthenticationFailed");
    }
    let r = anon.request("GET", "/jobs/j/tasks/t1", &[], None).unwrap();
    expect_err(r, 401, "Authorization");
    assert_eq!(snapshot(&mut c), before, "unauthenticated calls changed the state");

    // A collection where one task exists and one repeats: those two fail, the rest are added.
    let coll = json!({ "value": [task_body("t2"), task_body("t1"), task_body("t3"), task_body("t3")] });
    let r = send(&mut c, "POST", "/jobs/j/addtaskcollection", Some(&coll.to_string()));
    assert_eq!(r.status, 200, "{}", r.text());
    let res: TaskAddCollectionResult = serde_json::from_slice(&r.body).unwrap();
    let got: Vec<(&str, &str)> = res.value.iter().map(|x| (x.task_id.as_str(), x.status.as_str())).collect();
    assert_eq!(got, [("t2", "success"), ("t1", "clienterror"), ("t3", "success"), ("t3", "clienterror")]);
    for x in res.value.iter().filter(|x| x.status == "clienterror") {
        let e = x.error.as_ref().expect("a clienterror carries an error");
        assert_eq!(e.code, "TaskExists");
        assert!(e.message.value.contains(&format!("'{}'", x.task_id)), "{e:?}");
    }
    assert!(res.value.iter().all(|x| x.status == "clienterror" || x.error.is_none()), "{res:?}");
    assert_eq!(task_ids(&mut c, "j", None), ["t1", "t2", "t3"]);
    let t1 = c.get_task("j", "t1").unwrap();
    assert_eq!(serde_json::to_value(&t1).unwrap(), before["tasks"][0]["value"][0], "t1 is untouched");
}

#[test]
fn lists_page_and_filter() {
    let cluster = Cluster::start(Options { nodes: 1, ..Default::default() });
    let mut c = cluster.client();
    add_pool(&mut c, "idle", 1);
    let idle = Some(PoolInformation { pool_id: "idle".into() });
    c.add_job(&JobAddParameter { id: "p".into(), pool_info: idle, ..Default::default() }).unwrap();
    let tasks: Vec<_> = (0..25)
        .map(|i| TaskAddParameter { id: format!("t{i:02}"), command_line: "/bin/true".into(), ..Default::default() })
        .collect();
    let r = c.add_task_collection("p", tasks).unwrap();
    assert!(r.value.iter().all(|x| x.status == "success"), "{r:?}");
    let want: Vec<String> = (0..25).map(|i| format!("t{i:02}")).collect();

    // The client follows the links.
    let all = c.list_tasks("p", &ListOptions { max_results: Some(10), ..Default::default() }).unwrap();
    assert_eq!(all.into_iter().map(|t| t.id).collect::<Vec<_>>(), want);
    // By hand: exactly three pages of 10, 10 and 5.
    let mut next = Some("/jobs/p/tasks?maxresults=10".to_owned());
    let (mut pages, mut seen) = (Vec::new(), Vec::new());
    while let Some(path) = next.take() {
        let page = get_json(&mut c, &path);
        let ids = page["value"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned());
        let ids: Vec<String> = ids.collect();
        pages.push(ids.len());
        seen.extend(ids);
        if let Some(link) = page["odata.nextLink"].as_str() {
            assert!(link.starts_with(&cluster.config.url), "links are absolute: {link}");
            next = Some(link[cluster.config.url.len()..].to_owned());
        }
        assert!(pages.len() <= 3, "more than 3 pages: {pages:?}");
    }
    assert_eq!((pages, seen), (vec![10, 10, 5], want));

    // Filters over tasks that ran: a1 exits 0, a2 exits 3, b1 exits 1, b2 still runs.
    c.add_job(&JobAddParameter { id: "f".into(), ..Default::default() }).unwrap();
    for (id, cmd) in [("a1", "/bin/true"), ("a2", "/bin/sh -c 'exit 3'"), ("b1", "/bin/false"), ("b2", "sleep 60")] {
        c.add_task("f", &TaskAddParameter { id: id.into(), command_line: cmd.into(), ..Default::default() }).unwrap();
    }
    wait_for(Duration::from_secs(30), "a1, a2 and b1 to complete and b2 to run", || {
        let t = c.list_tasks("f", &ListOptions::default()).ok()?;
        let done = t.iter().filter(|t| t.state == TaskState::Completed).count();
        (done == 3 && t[3].state == TaskState::Running).then_some(())
    });
    let cases: [(&str, &[&str]); 8] = [
        ("startswith(id,'a')", &["a1", "a2"]),
        ("state eq 'completed'", &["a1", "a2", "b1"]),
        ("state ne 'completed'", &["b2"]),
        ("executionInfo/exitCode gt 0", &["a2", "b1"]),
        ("executionInfo/exitCode eq null", &["b2"]),
        ("startswith(id,'b') and state eq 'completed' or id eq 'a1'", &["a1", "b1"]),
        ("(startswith(id,'a') or id eq 'b2') and executionInfo/exitCode lt 1", &["a1"]),
        ("not startswith(id,'a') and (executionInfo/result eq 'failure' or state eq 'running')", &["b1", "b2"]),
    ];
    for (filter, want) in cases {
        assert_eq!(task_ids(&mut c, "f", Some(filter)), want, "{filter}");
    }
    // A filter survives paging.
    let page = get_json(&mut c, &format!("/jobs/p/tasks?maxresults=2&$filter={}", encode_component("id ge 't21'")));
    assert_eq!(page["value"].as_array().unwrap().len(), 2);
    let link = page["odata.nextLink"].as_str().expect("a next link");
    let rest = get_json(&mut c, &link[cluster.config.url.len()..]);
    let ids: Vec<&str> = rest["value"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!((ids, rest.get("odata.nextLink")), (vec!["t23", "t24"], None));

    // File paths that would leave the task directory are refused before any node is asked.
    assert_eq!(c.get_task_file("f", "a2", "stdout.txt", 0).unwrap(), b"");
    let before = snapshot(&mut c);
    for (path, needle) in [
        ("wd/../../x", "contains '..'"),
        ("wd/%2E%2E/%2E%2E/x", "contains '..'"),
        ("wd%2F..%2F..%2F..%2Fetc%2Fpasswd", "contains '..'"),
        ("..", "contains '..'"),
        ("%2Fetc%2Fpasswd", "is absolute"),
        ("/etc/passwd", "is absolute"),
        ("wd%5C..%5Cx", "backslash"),
    ] {
        let r = send(&mut c, "GET", &format!("/jobs/f/tasks/a1/files/{path}"), None);
        let e = expect_err(r, 400, needle);
        assert_eq!(e.code, "InvalidPropertyValue", "{path}");
        assert!(e.message.value.contains("file path '"), "{path}: {}", e.message.value);
    }
    expect_err(send(&mut c, "GET", "/jobs/f/tasks/nope/files/stdout.txt", None), 404, "task 'nope'");
    expect_err(send(&mut c, "GET", "/jobs/f/tasks/a1/files/nope.txt", None), 404, "'nope.txt'");
    let r = c.raw("GET", "/jobs/f/tasks/a1/files/stdout.txt", None, &[("Range", "bytes=x-")]).unwrap();
    expect_err(r, 400, "Range 'bytes=x-'");
    assert_eq!(snapshot(&mut c), before, "file requests changed the state");

    // The API description needs no token.
    let mut anon = gangway_tests::tls::http(&cluster.config);
    let r = anon.request("GET", "/openapi.json", &[], None).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc: Value = serde_json::from_slice(&r.body).expect("openapi.json is JSON");
    assert!(doc["paths"].get("/jobs/{jobId}/tasks").is_some(), "{:?}", doc["paths"].as_object().map(|p| p.keys()));
    // The Slurm front door's routes (`slurm_routes.rs`) are part of the public surface too.
    for path in [
        "/slurm/jobs",
        "/slurm/jobs/{id}",
        "/slurm/jobs/{id}/{action}",
        "/slurm/cancel",
        "/jobs/{jobId}/disable",
        "/jobs/{jobId}/enable",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        let target = r.strip_prefix('#').and_then(|p| doc.pointer(p));
        assert!(target.is_some(), "{r} points nowhere");
    }
}

/// Every `$ref` in an OpenAPI document.
fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

#[test]
fn clients_on_the_heads_machine_use_its_unix_socket_and_fall_back_to_tcp() {
    let cluster = Cluster::start(Options { nodes: 0, ..Default::default() });
    let socket = cluster.config.socket.clone().expect("client.json names the head's socket");
    assert_eq!(socket, cluster.state_dir().join("head.sock"));
    // A URL nothing listens on: only the socket can answer.
    let dead_url = "http://127.0.0.1:1".to_string();
    let through_socket = ClientConfig { url: dead_url.clone(), ..cluster.config.clone() };
    let pools = Client::new(&through_socket).unwrap().list_pools().unwrap();
    assert!(pools.iter().any(|p| p.id == "default"), "{pools:?}");
    // The socket is checked like TCP: a wrong token is refused.
    let wrong = ClientConfig { token: "0".repeat(64), ..through_socket.clone() };
    assert_eq!(Client::new(&wrong).unwrap().list_pools().unwrap_err().status(), Some(401));
    // No socket there (a state directory shared with another machine): the URL is used.
    let elsewhere = ClientConfig { socket: Some(cluster.dir.path().join("nothing.sock")), ..cluster.config.clone() };
    assert!(Client::new(&elsewhere).unwrap().list_pools().is_ok());
    let neither = ClientConfig { url: dead_url, ..elsewhere };
    let err = Client::new(&neither).unwrap().list_pools().unwrap_err().to_string();
    assert!(err.contains("127.0.0.1:1"), "{err}");
}

#[test]
fn connections_past_the_cap_are_closed_and_room_comes_back() {
    use std::io::Read;
    use std::net::TcpStream;
    // One launcher's stream, and two idle connections of ours, fill a cap of three.
    let opts = Options { nodes: 1, head_args: vec!["--max-connections".into(), "3".into()], ..Options::default() };
    let cluster = Cluster::start(opts);
    let addr = gangway_tests::tls::head_addr(&cluster.config);
    let first = TcpStream::connect(&addr).unwrap();
    let _second = TcpStream::connect(&addr).unwrap();
    // The head is at the cap once both are accepted: a new connection is closed unanswered.
    wait_for(Duration::from_secs(10), "a connection past the cap to be closed", || {
        let mut extra = TcpStream::connect(&addr).ok()?;
        extra.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
        let mut buf = [0u8; 16];
        matches!(extra.read(&mut buf), Ok(0)).then_some(())
    });
    // One of ours goes away: the head serves again.
    drop(first);
    wait_for(Duration::from_secs(10), "the head to serve again", || {
        let tls = gangway_tests::tls::client_tls(&cluster.config, None);
        let mut http = HttpClient::new(&cluster.config.url).ok()?.with_tls(tls);
        let r = http.request("GET", "/openapi.json", &[], None).ok()?;
        (r.status == 200).then_some(())
    });
}

#[test]
fn a_body_over_the_limit_is_refused_by_name() {
    use std::io::{Read, Write};
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    // Only the headers: the head refuses by the declared length, before reading any of it.
    let addr = gangway_tests::tls::head_addr(&cluster.config);
    let mut tcp = gangway_tests::tls::connect_tls(&cluster.config, None);
    let head = format!(
        "POST /jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        cluster.config.token,
        9 << 20
    );
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tcp.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("RequestBodyTooLarge") && answer.contains("a call takes at most 8388608 (8 MiB)"),
        "{answer}"
    );
    assert!(cluster.client().list_jobs(&ListOptions::default()).unwrap().is_empty(), "nothing was added");
}

#[test]
fn a_call_past_the_request_timeout_is_answered_with_operation_timed_out() {
    // A launcher that stops answering: a task-file call would wait for it (30 s); the head
    // answers at its --request-timeout instead.
    let opts = Options { nodes: 1, head_args: vec!["--request-timeout".into(), "1s".into()], ..Options::default() };
    let cluster = Cluster::start(opts);
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "j".into(), ..Default::default() }).unwrap();
    c.add_task("j", &TaskAddParameter { id: "t".into(), command_line: "/bin/true".into(), ..Default::default() })
        .unwrap();
    wait_for(Duration::from_secs(20), "the task to complete", || {
        c.get_task("j", "t").ok().filter(|t| t.state == TaskState::Completed)
    });
    let pid = cluster.nodes[0].as_ref().expect("the launcher").id() as i32;
    /// Resumes the launcher whatever the test's outcome.
    struct Stopped(i32);
    impl Drop for Stopped {
        fn drop(&mut self) {
            // SAFETY: kill(2) on a child of this test.
            unsafe { libc::kill(self.0, libc::SIGCONT) };
        }
    }
    // SAFETY: kill(2) on a child of this test.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let _resume = Stopped(pid);
    let started = std::time::Instant::now();
    let r = send(&mut c, "GET", "/jobs/j/tasks/t/files/stdout.txt", None);
    let e = expect_err(r, 500, "did not finish within 1s (--request-timeout)");
    assert_eq!(e.code, "OperationTimedOut");
    assert!(started.elapsed() < Duration::from_secs(20), "answered at the timeout, not the node's 30 s");
}
