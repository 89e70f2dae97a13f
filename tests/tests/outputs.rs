//! Output files through a real cluster: copied to a local HTTP server only on failure, to a
//! directory, and a failed upload treated as Azure's file upload error.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gangway_api::client::Client;
use gangway_api::*;
use gangway_tests::{wait_for, Cluster, Options};

/// What the server was sent: (path with query, body) of each request.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A tiny HTTP server that answers every PUT with 201 and remembers (path, body).
fn put_server() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut w = conn;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                    let mut len = 0;
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).unwrap();
                        if h.trim().is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    seen.lock().unwrap().push((path, body));
                    w.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n").unwrap();
                }
            });
        }
    });
    (url, got)
}

fn wait_done(c: &mut Client, job: &str, task: &str) -> Task {
    wait_for(Duration::from_secs(30), &format!("task {job}/{task} to complete"), || {
        let t = c.get_task(job, task).ok()?;
        (t.state == TaskState::Completed).then_some(t)
    })
}

fn output(pattern: &str, destination: OutputFileDestination, condition: UploadCondition) -> OutputFile {
    OutputFile {
        file_pattern: pattern.into(),
        destination,
        upload_options: OutputFileUploadOptions { upload_condition: condition },
    }
}

fn container(url: &str, path: Option<&str>) -> OutputFileDestination {
    OutputFileDestination {
        container: Some(OutputFileContainer { container_url: url.into(), path: path.map(str::to_owned) }),
        ..Default::default()
    }
}

#[test]
fn outputs_go_to_an_http_server_only_on_failure() {
    let (url, got) = put_server();
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "out".into(), ..Default::default() }).unwrap();
    let sas = format!("{url}/bucket?sig=abc");
    let outputs = vec![
        output("res/*.txt", container(&sas, Some("run")), UploadCondition::TaskFailure),
        output("../stdout.txt", container(&sas, Some("logs/stdout.txt")), UploadCondition::TaskFailure),
    ];
    for (id, code) in [("ok", 0), ("bad", 3)] {
        let cmd =
            format!("/bin/sh -c 'mkdir res; echo {id} > res/a.txt; echo b > res/b.txt; echo said-{id}; exit {code}'");
        let t =
            TaskAddParameter { id: id.into(), command_line: cmd, output_files: outputs.clone(), ..Default::default() };
        c.add_task("out", &t).unwrap();
    }
    let ok = wait_done(&mut c, "out", "ok");
    let bad = wait_done(&mut c, "out", "bad");
    assert_eq!((ok.execution_info.exit_code, ok.execution_info.failure_info), (Some(0), None));
    assert_eq!(bad.execution_info.exit_code, Some(3));
    let mut puts = got.lock().unwrap().clone();
    puts.sort();
    let want: Vec<(String, Vec<u8>)> = vec![
        ("/bucket/logs/stdout.txt?sig=abc".into(), b"said-bad\n".to_vec()),
        ("/bucket/run/a.txt?sig=abc".into(), b"bad\n".to_vec()),
        ("/bucket/run/b.txt?sig=abc".into(), b"b\n".to_vec()),
    ];
    assert_eq!(puts, want, "only the failed task's files, named below the pattern's directory");
    let log = String::from_utf8(c.get_task_file("out", "ok", "fileuploadout.txt", 0).unwrap()).unwrap();
    assert!(log.contains("res/*.txt: not uploaded (TaskFailure and the task succeeded)"), "{log}");
    let log = String::from_utf8(c.get_task_file("out", "bad", "fileuploadout.txt", 0).unwrap()).unwrap();
    assert!(log.contains(&format!("uploaded res/a.txt to {url}/bucket/run/a.txt?sig=abc")), "{log}");
}

#[test]
fn a_failed_upload_is_a_file_upload_error_and_a_directory_is_a_destination() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "up".into(), uses_task_dependencies: Some(true), ..Default::default() }).unwrap();
    // Nothing listens there: the upload fails, and exitConditions.fileUploadError decides.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/b", dead.local_addr().unwrap());
    drop(dead);
    let satisfy = ExitOptions { job_action: None, dependency_action: Some(DependencyAction::Satisfy) };
    let t = TaskAddParameter {
        id: "lost".into(),
        command_line: "/bin/sh -c 'echo x > x.dat'".into(),
        output_files: vec![output("*.dat", container(&dead_url, None), UploadCondition::TaskCompletion)],
        exit_conditions: Some(ExitConditions { file_upload_error: Some(satisfy), ..Default::default() }),
        ..Default::default()
    };
    c.add_task("up", &t).unwrap();
    let dir = cluster.state_dir().join("collected");
    let to_dir = OutputFileDestination { path: Some(dir.display().to_string()), ..Default::default() };
    let after = TaskAddParameter {
        id: "after".into(),
        command_line: "/bin/sh -c 'mkdir -p a/b; echo deep > a/b/c.log'".into(),
        depends_on: Some(TaskDependencies { task_ids: vec!["lost".into()], task_id_ranges: Vec::new() }),
        output_files: vec![output("**/*.log", to_dir, UploadCondition::TaskSuccess)],
        ..Default::default()
    };
    c.add_task("up", &after).unwrap();
    let lost = wait_done(&mut c, "up", "lost");
    let f = lost.execution_info.failure_info.expect("the upload failed");
    assert_eq!((lost.execution_info.exit_code, f.code.as_str()), (Some(0), "FileUploadFailed"));
    assert!(f.message.contains("x.dat: PUT"), "{}", f.message);
    let err = String::from_utf8(c.get_task_file("up", "lost", "fileuploaderr.txt", 0).unwrap()).unwrap();
    assert!(err.starts_with("x.dat: PUT"), "{err}");
    assert_eq!(wait_done(&mut c, "up", "after").execution_info.exit_code, Some(0), "fileUploadError satisfied it");
    assert_eq!(std::fs::read_to_string(dir.join("a/b/c.log")).unwrap(), "deep\n");
    // Refused at submission: a destination gangway cannot reach.
    let e = c
        .add_task(
            "up",
            &TaskAddParameter {
                id: "tls".into(),
                command_line: "true".into(),
                output_files: vec![output("*", container("https://host/b", None), UploadCondition::TaskCompletion)],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("outputFiles[0].destination.container.containerUrl"), "{e}");
}

#[test]
fn a_multi_instance_tasks_outputs_come_from_its_primary() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 1, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "mi".into(), ..Default::default() }).unwrap();
    let dir = cluster.state_dir().join("from-primary");
    let t = TaskAddParameter {
        id: "t".into(),
        command_line: "/bin/sh -c 'echo $AZ_BATCH_IS_CURRENT_NODE_MASTER > result.txt'".into(),
        multi_instance_settings: Some(MultiInstanceSettings {
            number_of_instances: 2,
            coordination_command_line: Some("/bin/sh -c 'echo coordinated > coord.txt'".into()),
            common_resource_files: Vec::new(),
        }),
        output_files: vec![output(
            "*.txt",
            OutputFileDestination { path: Some(dir.display().to_string()), ..Default::default() },
            UploadCondition::TaskSuccess,
        )],
        ..Default::default()
    };
    c.add_task("mi", &t).unwrap();
    let done = wait_done(&mut c, "mi", "t");
    assert_eq!(done.execution_info.result, Some(TaskExecutionResult::Success), "{:?}", done.execution_info);
    assert_eq!(std::fs::read_to_string(dir.join("result.txt")).unwrap(), "true\n", "the primary's");
}

#[test]
fn outputs_go_to_the_heads_file_store_of_the_tasks_user() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "store".into(), ..Default::default() }).unwrap();
    let to_store = |name: &str| OutputFileDestination { uploaded_file: Some(name.into()), ..Default::default() };
    let t = TaskAddParameter {
        id: "t".into(),
        command_line: "/bin/sh -c 'mkdir -p res/x; echo one > res/a.txt; echo two > res/x/b.txt; echo log'".into(),
        output_files: vec![
            output("res/**/*.txt", to_store("run1-"), UploadCondition::TaskSuccess),
            output("../stdout.txt", to_store("run1-stdout.txt"), UploadCondition::TaskSuccess),
        ],
        ..Default::default()
    };
    c.add_task("store", &t).unwrap();
    let done = wait_done(&mut c, "store", "t");
    assert_eq!(done.execution_info.failure_info, None);
    let get = |c: &mut Client, name: &str| {
        let r = c.raw("GET", &format!("/files/{name}"), None, &[]).unwrap();
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    };
    assert_eq!(get(&mut c, "run1-a.txt"), (200, "one\n".to_string()));
    assert_eq!(get(&mut c, "run1-x.b.txt"), (200, "two\n".to_string()));
    assert_eq!(get(&mut c, "run1-stdout.txt"), (200, "log\n".to_string()));
    let (code, out, err) = cluster.cli(&["file", "get", "run1-a.txt"]);
    assert_eq!((code, out.as_str()), (0, "one\n"), "{err}");
}
