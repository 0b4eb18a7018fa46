//! Every admin command tells success from failure, and a failure of the work from one of its
//! setting: 0 success, 1 a problem found, 2 bad usage or configuration, 3 could not run.

use std::process::Output;

use crate::helpers::{new_id, shared, visiodroits, TestApp};

fn status(out: &Output) -> (i32, String) {
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn admin_commands_exit_0_1_2_or_3() {
    let app = TestApp::spawn().await;
    let url = shared().admin_url(&app.db_name);
    let good = [("DATABASE_URL", url.as_str())];

    let (code, err) = status(&visiodroits(&["audit", "verify"], &good));
    assert_eq!(code, 0, "{err}");

    let (code, err) = status(&visiodroits(&["audit", "verify"], &[]));
    assert_eq!(code, 2, "no DATABASE_URL: {err}");
    assert!(err.contains("DATABASE_URL"), "{err}");
    let (code, err) = status(&visiodroits(
        &["audit", "verify"],
        &[("DATABASE_URL", "not a url")],
    ));
    assert_eq!(code, 2, "a DATABASE_URL that is no URL: {err}");
    let (code, _) = status(&visiodroits(&["no-such-command"], &good));
    assert_eq!(code, 2, "clap's usage errors");

    let nowhere = "postgres://nobody@localhost/none?host=/nonexistent-socket-dir";
    let (code, err) = status(&visiodroits(
        &["audit", "verify"],
        &[("DATABASE_URL", nowhere)],
    ));
    assert_eq!(code, 3, "database unreachable: {err}");
    let (code, err) = status(&visiodroits(&["import", "/nonexistent/droits.csv"], &good));
    assert_eq!(code, 3, "file unreachable: {err}");

    // Rejected lines: the good ones are imported, the run says a problem was found.
    let file = shared().base.join(format!("droits-{}.csv", new_id()));
    let sample =
        std::fs::read_to_string(crate::helpers::repo().join("data/demo-droits.csv")).unwrap();
    let mut lines: Vec<&str> = sample.lines().take(3).collect();
    lines.push("une,ligne,cassée");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = visiodroits(&["import", file.to_str().unwrap()], &good);
    let (code, err) = status(&out);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("ligne 4"), "the bad line is named: {err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 importée(s), 1 rejetée(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = std::fs::remove_file(file);

    let help = visiodroits(&["--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit status: 0 success; 1"));
}

#[tokio::test]
async fn the_guide_s_check_command_reads_a_copy_of_env_example() {
    // The operator's copy: every path pointed at this machine's files, the rest as shipped.
    let db = shared().fresh_database().await;
    let vars = shared().config_vars(&db);
    let example = std::fs::read_to_string(crate::helpers::repo().join(".env.example")).unwrap();
    let mut copy = String::new();
    let mut set = Vec::new();
    for line in example.lines() {
        let name = line
            .split_once('=')
            .map(|(n, _)| n)
            .filter(|n| !n.starts_with('#'));
        match name.and_then(|n| vars.get(n).map(|v| (n, v))) {
            Some((n, v))
                if line.contains("/etc/visiodroits")
                    || line.contains("/var/lib")
                    || n == "DATABASE_URL" =>
            {
                copy.push_str(&format!("{n}={v}\n"));
                set.push(n.to_string());
            }
            _ => {
                copy.push_str(line);
                copy.push('\n');
            }
        }
    }
    assert!(set.len() >= 8, "{set:?}");
    let file = shared().base.join(format!("env-{}", new_id()));
    std::fs::write(&file, copy).unwrap();
    let file = file.to_str().unwrap();
    let out = visiodroits(&["--env-file", file, "check-config"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration valid"));
    // The shipped file as it is names the first file this machine lacks; no file at all is bad
    // usage.
    let shipped = crate::helpers::repo().join(".env.example");
    let out = visiodroits(
        &["--env-file", shipped.to_str().unwrap(), "check-config"],
        &[],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/etc/visiodroits/"));
    let out = visiodroits(&["--env-file", "/nonexistent/env", "check-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--env-file"));
}
