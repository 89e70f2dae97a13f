//! Resource files and the head's file store on a real cluster: `gangway file put`, tasks that
//! fetch from the store, a node path and an HTTP server; download failures that are not
//! retried; and who may read and write `/files`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use gangway_api::http::HttpClient;
use gangway_api::*;
use gangway_tests::{wait_for, Cluster, Options};

fn wait_done(c: &mut gangway_api::client::Client, job: &str, task: &str) -> Task {
    wait_for(Duration::from_secs(30), &format!("task {job}/{task} to complete"), || {
        let t = c.get_task(job, task).ok()?;
        (t.state == TaskState::Completed).then_some(t)
    })
}

/// Serves `body` to every GET on a loopback port, from a thread; returns the port.
fn serve(body: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = s.write_all(head.as_bytes()).and_then(|_| s.write_all(body));
        }
    });
    port
}

#[test]
fn resource_files_from_the_store_a_node_path_and_http_reach_the_working_directory() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let dir = cluster.dir.path();
    let script = dir.join("local-script.sh");
    std::fs::write(&script, "#!/bin/sh\ncat data/shared.txt web.txt\n").unwrap();
    let (code, _, err) = cluster.cli(&["file", "put", script.to_str().unwrap(), "--name", "show.sh"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cluster.cli(&["file", "list"]);
    assert_eq!(code, 0, "{err}");
    let size = std::fs::metadata(&script).unwrap().len().to_string();
    assert!(out.contains("show.sh") && out.contains(&size), "{out}");

    let shared = dir.join("shared.txt");
    std::fs::write(&shared, "from a path\n").unwrap();
    let port = serve(b"from http\n");
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "rf".into(), ..Default::default() }).unwrap();
    let files = vec![
        ResourceFile {
            file_path: "bin/show.sh".into(),
            uploaded_file: Some("show.sh".into()),
            file_mode: Some("0755".into()),
            ..Default::default()
        },
        ResourceFile {
            file_path: "data/shared.txt".into(),
            path: Some(shared.to_str().unwrap().into()),
            ..Default::default()
        },
        ResourceFile {
            file_path: "web.txt".into(),
            http_url: Some(format!("http://127.0.0.1:{port}/some/web.txt?x=1")),
            ..Default::default()
        },
    ];
    let t = TaskAddParameter {
        id: "t".into(),
        command_line: "bin/show.sh".into(),
        resource_files: files.clone(),
        ..Default::default()
    };
    c.add_task("rf", &t).unwrap();
    let done = wait_done(&mut c, "rf", "t");
    let stderr = String::from_utf8_lossy(&c.get_task_file("rf", "t", "stderr.txt", 0).unwrap()).into_owned();
    assert_eq!(done.execution_info.exit_code, Some(0), "{:?} {stderr}", done.execution_info);
    assert_eq!(c.get_task_file("rf", "t", "stdout.txt", 0).unwrap(), b"from a path\nfrom http\n");
    assert_eq!(done.resource_files, files, "the task shows its resource files");
}

#[test]
fn a_resource_file_that_cannot_be_fetched_fails_the_task_without_retries() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "missing".into(), ..Default::default() }).unwrap();
    let retries = TaskConstraints { max_task_retry_count: Some(3), ..Default::default() };
    let t = TaskAddParameter {
        id: "t".into(),
        command_line: "/bin/true".into(),
        constraints: Some(retries),
        resource_files: vec![ResourceFile {
            file_path: "x.sh".into(),
            uploaded_file: Some("never-uploaded.sh".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    c.add_task("missing", &t).unwrap();
    let done = wait_done(&mut c, "missing", "t");
    let info = &done.execution_info;
    assert_eq!(info.exit_code, None);
    assert_eq!(info.retry_count, 0, "a pre-processing error is not retried");
    assert_eq!(info.result, Some(TaskExecutionResult::Failure));
    let failure = info.failure_info.as_ref().expect("failure info");
    assert_eq!(failure.code, "ResourceFileDownloadFailed");
    assert_eq!(failure.category, ErrorCategory::UserError);
    assert!(failure.message.contains("never-uploaded.sh") && failure.message.contains("404"), "{}", failure.message);

    // A bad description is refused at submit, naming the field and index.
    let bad = TaskAddParameter {
        id: "bad".into(),
        command_line: "/bin/true".into(),
        resource_files: vec![
            ResourceFile { file_path: "ok".into(), path: Some("/etc/hostname".into()), ..Default::default() },
            ResourceFile { file_path: "../up".into(), path: Some("/etc/hostname".into()), ..Default::default() },
        ],
        ..Default::default()
    };
    let e = c.add_task("missing", &bad).unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("resourceFiles[1].filePath"), "{e}");
}

#[test]
fn the_file_store_needs_the_token_and_nodes_reach_only_the_files_of_their_work() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    let tls = |id| gangway_tests::tls::client_tls(&cluster.config, id);
    let mut anon = HttpClient::new(&cluster.config.url).unwrap().with_tls(tls(None));
    let r = anon.request("PUT", "/files/a.txt", &[], Some(b"x")).unwrap();
    assert_eq!(r.status, 401, "{}", r.text());

    c.put_file("a.txt", b"hello").unwrap();
    let r = anon.request("GET", "/files/a.txt", &[("Authorization", "Bearer wrong")], None).unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
    // A node (by its certificate) reaches a stored file only for work it runs that names it
    // (a real launcher's fetches and stores are in the other tests): this one runs nothing.
    let id = gangway_tests::tls::join_as(&cluster.state_dir(), &cluster.config, "reader");
    let mut node = HttpClient::new(&cluster.config.url).unwrap().with_tls(tls(Some(&id)));
    for (method, path) in [("GET", "/files/a.txt"), ("GET", "/files/a.txt?owner=4242"), ("PUT", "/files/x.txt?owner=0")]
    {
        let r = node.request(method, path, &[], Some(b"x")).unwrap();
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        assert!(r.text().contains("node reader runs no task of uid"), "{}", r.text());
    }
    // Listing, deleting and writing without an owner need a user's credential.
    for (method, path) in [("GET", "/files"), ("PUT", "/files/a.txt"), ("DELETE", "/files/a.txt")] {
        let r = node.request(method, path, &[], Some(b"y")).unwrap();
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
    }

    assert_eq!(c.get_file("a.txt").unwrap(), b"hello");
    c.put_file("a.txt", b"replaced").unwrap();
    assert_eq!(c.get_file("a.txt").unwrap(), b"replaced");
    let listed = c.list_files().unwrap();
    assert_eq!(listed.iter().map(|f| (f.name.as_str(), f.size)).collect::<Vec<_>>(), [("a.txt", 8)]);
    assert_eq!(c.put_file("a b", b"x").unwrap_err().status(), Some(400));
    c.delete_file("a.txt").unwrap();
    assert_eq!(c.get_file("a.txt").unwrap_err().status(), Some(404));
    assert_eq!(c.delete_file("a.txt").unwrap_err().status(), Some(404));
    let (code, _, err) = cluster.cli(&["file", "delete", "a.txt"]);
    assert_ne!(code, 0);
    assert!(err.contains("a.txt"), "{err}");
    // Stored files survive a restart of the head (they are in the state directory).
    c.put_file("kept.bin", &[0u8, 1, 2, 255]).unwrap();
    let mut cluster = cluster;
    cluster.kill_head();
    cluster.start_head();
    assert_eq!(cluster.client().get_file("kept.bin").unwrap(), [0u8, 1, 2, 255]);
}
