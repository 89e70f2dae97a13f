//! Application packages through a real cluster: uploaded (tar.gz and zip), referenced by
//! version and by default, unpacked once per node and version, named in the environment.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use gangway_api::client::Client;
use gangway_api::*;
use gangway_tests::{wait_for, Cluster, Options};

/// An archive holding `hello.sh`, which prints `says`.
fn archive(dir: &Path, says: &str, zip: bool) -> Vec<u8> {
    let src = dir.join(format!("src-{says}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("hello.sh"), format!("#!/bin/sh\necho {says}\n")).unwrap();
    let out = dir.join(format!("{says}.pkg"));
    let ok = if zip {
        let script = format!(
            "import zipfile; z = zipfile.ZipFile('{}', 'w'); z.write('{}', 'hello.sh'); z.close()",
            out.display(),
            src.join("hello.sh").display()
        );
        Command::new("python3").args(["-c", &script]).status().unwrap()
    } else {
        Command::new("tar").arg("-czf").arg(&out).arg("-C").arg(&src).arg("hello.sh").status().unwrap()
    };
    assert!(ok.success());
    std::fs::read(out).unwrap()
}

fn upload(c: &mut Client, app: &str, version: &str, bytes: &[u8]) -> (u16, String) {
    let r = c.raw("PUT", &format!("/applications/{app}/versions/{version}"), Some(bytes), &[]).unwrap();
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

fn run(c: &mut Client, job: &str, id: &str, refs: Vec<ApplicationPackageReference>, cmd: &str) -> Task {
    let t = TaskAddParameter {
        id: id.into(),
        command_line: format!("/bin/sh -c '{cmd}'"),
        application_package_references: refs,
        ..Default::default()
    };
    c.add_task(job, &t).unwrap();
    wait_for(Duration::from_secs(30), &format!("task {id}"), || {
        let t = c.get_task(job, id).ok()?;
        (t.state == TaskState::Completed).then_some(t)
    })
}

fn reference(app: &str, version: Option<&str>) -> ApplicationPackageReference {
    ApplicationPackageReference { application_id: app.into(), version: version.map(str::to_owned) }
}

#[test]
fn packages_are_unpacked_once_per_node_and_named_in_the_environment() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    let tmp = tempfile::tempdir().unwrap();
    // Through the CLI, as an admin would.
    let first = tmp.path().join("one.tgz");
    std::fs::write(&first, archive(tmp.path(), "one", false)).unwrap();
    let (code, out, err) = cluster.cli(&["app", "upload", "hello", "1.0", first.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(upload(&mut c, "hello", "2.0", &archive(tmp.path(), "two", true)).0, 201);
    let (status, body) = upload(&mut c, "hello", "3.0", b"#!/bin/sh\necho not an archive\n");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not a zip or tar.gz archive"), "{body}");
    let (code, out, err) = cluster.cli(&["app", "default", "hello", "2.0"]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, listed, _) = cluster.cli(&["app", "list"]);
    assert!(listed.lines().any(|l| l.starts_with("hello") && l.contains("2.0") && l.contains("yes")), "{listed}");
    let app: Application =
        serde_json::from_slice(&c.raw("GET", "/applications/hello", None, &[]).unwrap().body).unwrap();
    assert_eq!(app.default_version.as_deref(), Some("2.0"));
    assert_eq!(app.versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), ["1.0", "2.0"]);
    assert_eq!(app.versions[1].format, PackageFormat::Zip);

    c.add_job(&JobAddParameter { id: "apps".into(), ..Default::default() }).unwrap();
    for i in 0..2 {
        let t = run(
            &mut c,
            "apps",
            &format!("v1-{i}"),
            vec![reference("hello", Some("1.0"))],
            "sh $AZ_BATCH_APP_PACKAGE_HELLO_1_0/hello.sh",
        );
        assert_eq!(c.get_task_file("apps", &t.id, "stdout.txt", 0).unwrap(), b"one\n");
        let t = run(
            &mut c,
            "apps",
            &format!("default-{i}"),
            vec![reference("hello", None)],
            "sh $AZ_BATCH_APP_PACKAGE_HELLO/hello.sh",
        );
        assert_eq!(c.get_task_file("apps", &t.id, "stdout.txt", 0).unwrap(), b"two\n", "the default version");
    }
    // Once per node and version: two directories for four tasks.
    let unpacked: Vec<String> = std::fs::read_dir(cluster.node_root(0).join("applications"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(unpacked.len(), 2, "{unpacked:?}");
    // Refused at submission: what does not exist.
    let bad = TaskAddParameter {
        id: "bad".into(),
        command_line: "true".into(),
        application_package_references: vec![reference("hello", Some("9.9"))],
        ..Default::default()
    };
    let e = c.add_task("apps", &bad).unwrap_err();
    assert!(e.to_string().contains("application 'hello' has no version '9.9'"), "{e}");
    let r = c.raw("DELETE", "/applications/hello/versions/1.0", None, &[]).unwrap();
    assert_eq!(r.status, 200);
    let e = c
        .add_task(
            "apps",
            &TaskAddParameter {
                id: "gone".into(),
                application_package_references: vec![reference("hello", Some("1.0"))],
                ..bad
            },
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("InvalidApplicationPackageReferences") || e.to_string().contains("no version '1.0'"),
        "{e}"
    );
}
