//! `kb-usage` end to end: the built binary against the emulator served in-process over
//! loopback.

mod common;

use std::str::FromStr;

use common::{amount_of, august, get_august, kb, kb_with_stdin, kbs, random_amounts, rollup, TempFile, TestServer};
use usage_models::Decimal;
use usage_transport_memory::serve::{Faults, ServeConfig};
use usage_transport_memory::Fault;

const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
const SUB2: &str = "0e1a4c7a-2222-4d47-9a7e-1f3c2c8f4a11";

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

#[test]
fn record_then_get() {
    let server = TestServer::with_subscriptions(&[SUB]);
    let url = server.url();
    let run = kbs(
        &url,
        &format!("record --subscription {SUB} --unit gallons --amount 10 --date 2013-08-01T06:30:00Z"),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.starts_with("recorded 10 gallons for subscription"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("tracking id "), "{}", run.stdout);

    let args = [
        "record",
        "--subscription",
        SUB,
        "--unit",
        "gallons",
        "--amount",
        "5",
        "--date",
        "2013-08-31T06:30:00Z",
        "--tracking-id",
        "meter-7",
        "--output",
        "json",
    ];
    let first = kb(&url, &args);
    assert_eq!(first.code, 0, "{first:?}");
    let json: serde_json::Value = serde_json::from_str(&first.stdout).unwrap();
    assert_eq!(json["tracking_id"], "meter-7");
    assert_eq!(json["already_recorded"], false);
    // The same command again records nothing twice.
    let again = kb(&url, &args);
    assert_eq!(again.code, 0, "{again:?}");
    let json: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(json["already_recorded"], true);
    let text = kb(&url, &[&["-vv"], &args[..args.len() - 2]].concat());
    assert!(text.stdout.starts_with("already recorded"), "{text:?}");
    // -vv shows the client's events, never a credential.
    assert!(text.stderr.contains("record_usage"), "{text:?}");
    assert!(
        !text.stderr.contains("lazar") && !text.stderr.contains("password"),
        "{text:?}"
    );

    // Half-open windows, as Kill Bill's boundary case.
    assert_eq!(
        amount_of(&rollup(&url, SUB, "2013-08-1", "2013-08-31"), "gallons"),
        dec("10")
    );
    assert_eq!(august(&url, SUB, "gallons"), dec("15"));
    assert_eq!(server.emulator.row_count(), 2);

    let table = get_august(&url, SUB, &[]);
    assert_eq!(table.code, 0);
    assert_eq!(
        table.stdout,
        format!(
            "subscription  {SUB}\nwindow        [2013-08-01T00:00:00.000Z, 2013-09-01T00:00:00.000Z)\n\n\
             unit type  amount\ngallons        15\n"
        )
    );
    let one_unit = kbs(
        &url,
        &format!("get --subscription {SUB} --unit liters --from 2013-08-01 --to 2013-09-01"),
    );
    assert!(one_unit.stdout.ends_with("no usage in this window\n"), "{one_unit:?}");
}

#[test]
fn invalid_client_settings_name_their_option() {
    let server = TestServer::with_subscriptions(&[SUB]);
    let url = server.url();
    let long = "x".repeat(51);
    let bad = kbs(
        &url,
        &format!("record --subscription {SUB} --unit a --amount 1 --created-by {long}"),
    );
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("--created-by: is 51 characters long"), "{bad:?}");
    // Request options are checked when built, before any call, and name their option too.
    let bad = kbs(
        &url,
        &format!("record --subscription {SUB} --unit a --amount 1 --request-id réq-1"),
    );
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("--request-id: must be ASCII"), "{bad:?}");
    let august = [
        "get",
        "--subscription",
        SUB,
        "--from",
        "2013-08-01",
        "--to",
        "2013-09-01",
    ];
    let bad = kb("ftp://kill-bill.test", &august);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr.contains("--url: \"ftp://kill-bill.test\" must start with"),
        "{bad:?}"
    );
    assert_eq!(server.emulator.row_count(), 0);
}

#[test]
fn exit_codes_and_messages() {
    let server = TestServer::with_subscriptions(&[SUB]);
    let url = server.url();
    // 2: invalid input, nothing sent.
    let bad = kbs(&url, "record --subscription nope --unit a --amount 1");
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--subscription \"nope\" is not a UUID"), "{bad:?}");
    let bad = kbs(
        &url,
        &format!("record --subscription {SUB} --unit a --amount 1.0000000001"),
    );
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--amount"), "{bad:?}");
    let bad = kbs(
        &url,
        &format!("get --subscription {SUB} --from 2013-09-01 --to 2013-08-01"),
    );
    assert_eq!(bad.code, 2, "{bad:?}");
    assert_eq!(
        kbs(&url, &format!("get --subscription {SUB}")).code,
        2,
        "clap usage error"
    );
    assert_eq!(server.emulator.row_count(), 0);
    // 3: the server's error, plainly.
    let missing = get_august(&url, SUB2, &[]);
    assert_eq!(missing.code, 3);
    assert_eq!(
        missing.stderr,
        format!(
            "error: Kill Bill answered 404 Not Found: ObjectDoesNotExist: Object id={SUB2} type=SUBSCRIPTION doesn't exist!\n"
        )
    );
    let denied = get_august(&url, SUB, &["--api-secret", "hunter2"]);
    assert_eq!(denied.code, 3);
    assert!(denied.stderr.contains("401"), "{denied:?}");
    assert!(!denied.stderr.contains("hunter2"));
    // 4: nobody listening.
    let refused = get_august("http://127.0.0.1:1", SUB, &["--retries", "0"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(
        refused.stderr.starts_with("error: cannot reach the server"),
        "{refused:?}"
    );
    // No Rust internals anywhere.
    for run in [&missing, &denied, &refused] {
        assert!(
            !run.stderr.contains("panicked") && !run.stderr.contains("Error {"),
            "{run:?}"
        );
    }
}

#[test]
fn help_has_examples_and_hides_secrets() {
    for command in ["record", "import", "get", "series", "serve"] {
        let run = kb_with_env_secret(&[command, "--help"]);
        assert_eq!(run.code, 0);
        assert!(run.stdout.contains("Example"), "{command}: {}", run.stdout);
        assert!(!run.stdout.contains("s3cr3t"), "{command} shows a secret");
    }
    let get = kbs("http://127.0.0.1:1", "get --help");
    assert!(get.stdout.contains("half-open"));
    assert!(get.stdout.contains("\"unit_type\""));
}

fn kb_with_env_secret(args: &[&str]) -> common::Run {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kb-usage"))
        .args(args)
        .env("KILLBILL_PASSWORD", "s3cr3t")
        .env("KILLBILL_API_SECRET", "s3cr3t")
        .output()
        .unwrap();
    common::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A CSV file of `n` rows spread over two subscriptions and two units, and the exact sums.
fn csv_file(n: usize, seed: u64) -> (String, [Decimal; 4]) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (amounts, _) = random_amounts(&mut rng, n);
    let mut sums = [Decimal::ZERO; 4];
    let mut text = String::from("subscription_id,unit_type,record_date,amount\n");
    for (i, amount) in amounts.iter().enumerate() {
        let (sub, sub_index) = if i % 3 == 0 { (SUB2, 2) } else { (SUB, 0) };
        let (unit, unit_index) = if i % 2 == 0 { ("gallons", 0) } else { ("api calls", 1) };
        sums[sub_index + unit_index] += dec(amount);
        text.push_str(&format!(
            "{sub},{unit},2013-08-{:02}T{:02}:00:00Z,{amount}\n",
            1 + i % 28,
            i % 24
        ));
    }
    (text, sums)
}

fn assert_sums(url: &str, sums: &[Decimal; 4]) {
    let first = rollup(url, SUB, "2013-08-01", "2013-09-01");
    let second = rollup(url, SUB2, "2013-08-01", "2013-09-01");
    assert_eq!(amount_of(&first, "gallons"), sums[0]);
    assert_eq!(amount_of(&first, "api calls"), sums[1]);
    assert_eq!(amount_of(&second, "gallons"), sums[2]);
    assert_eq!(amount_of(&second, "api calls"), sums[3]);
}

fn summary(run: &common::Run) -> serde_json::Value {
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {run:?}"))
}

#[test]
fn import_a_good_csv_then_again() {
    let server = TestServer::with_subscriptions(&[SUB, SUB2]);
    let url = server.url();
    let (text, sums) = csv_file(3_000, 1);
    let file = TempFile::new("good.csv", text.as_bytes());
    let run = kb(&url, &["import", file.path(), "--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let json = summary(&run);
    assert_eq!(json["rows"], 3_000);
    // SUB has 2,000 rows (2 requests), SUB2 1,000 (1 request).
    assert_eq!(json["requests"], 3);
    assert_eq!(json["recorded_rows"], 3_000);
    assert_eq!(json["already_recorded_requests"], 0);
    assert_eq!(json["failed_requests"], 0);
    assert_sums(&url, &sums);
    assert_eq!(server.emulator.row_count(), 3_000);

    // The same import again: everything refused as a duplicate, nothing doubled.
    let again = kb(&url, &["import", file.path()]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.stdout.contains("already recorded:  3000 rows in 3 requests"),
        "{}",
        again.stdout
    );
    assert!(
        again.stdout.contains("recorded:          0 rows in 0 requests"),
        "{}",
        again.stdout
    );
    assert_sums(&url, &sums);
    assert_eq!(server.emulator.row_count(), 3_000);

    // JSON lines from stdin, with the rows' own tracking ids respected.
    let jsonl = format!(
        "{{\"subscription_id\":\"{SUB}\",\"unit_type\":\"liters\",\"record_date\":\"2013-08-02\",\"amount\":1.5,\"tracking_id\":\"batch-1\"}}\n\
         {{\"subscription_id\":\"{SUB}\",\"unit_type\":\"liters\",\"record_date\":\"2013-08-03\",\"amount\":\"2\",\"tracking_id\":\"batch-1\"}}\n\
         {{\"subscription_id\":\"{SUB}\",\"unit_type\":\"liters\",\"record_date\":\"2013-08-03\",\"amount\":4,\"tracking_id\":\"batch-2\"}}\n"
    );
    let run = kb_with_stdin(
        &url,
        &["import", "--format", "jsonl", "-", "--output", "json"],
        Some(jsonl.as_bytes()),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(summary(&run)["requests"], 2);
    let rows = server.emulator.rows(SUB.parse().unwrap());
    let batch1: Vec<_> = rows.iter().filter(|r| r.tracking_id() == "batch-1").collect();
    assert_eq!(batch1.len(), 2);
    assert_eq!(august(&url, SUB, "liters"), dec("7.5"));
}

#[test]
fn bad_rows_are_all_reported_and_nothing_is_sent() {
    let server = TestServer::with_subscriptions(&[SUB]);
    let url = server.url();
    let text = format!(
        "subscription_id,unit_type,record_date,amount\n\
         {SUB},gallons,2013-08-01,10\n\
         {SUB},gallons,2013-08-32,10\n\
         {SUB},gallons,2013-08-01,10\n\
         not-a-uuid,,2013-08-01,x\n\
         {SUB},gallons,2013-08-01,1e400\n"
    );
    let file = TempFile::new("bad.csv", text.as_bytes());
    let run = kb(&url, &["import", file.path()]);
    assert_eq!(run.code, 2, "{run:?}");
    let reported: Vec<&str> = run.stderr.lines().filter(|l| l.contains(": line ")).collect();
    assert_eq!(reported.len(), 3, "{}", run.stderr);
    assert!(
        reported[0].contains("line 3: record_date \"2013-08-32\""),
        "{}",
        reported[0]
    );
    assert!(reported[1].contains("line 5: subscription_id"), "{}", reported[1]);
    assert!(
        reported[1].contains("unit_type") && reported[1].contains("amount"),
        "{}",
        reported[1]
    );
    assert!(reported[2].contains("line 6: amount"), "{}", reported[2]);
    assert!(run.stderr.contains("3 invalid rows"), "{}", run.stderr);
    assert_eq!(server.emulator.row_count(), 0, "nothing recorded");

    let dry = kb(
        &url,
        &["import", file.path(), "--skip-invalid", "--dry-run", "--output", "json"],
    );
    assert_eq!(dry.code, 0, "{dry:?}");
    assert_eq!(summary(&dry)["rows"], 2);
    assert_eq!(summary(&dry)["invalid_rows"], 3);
    assert_eq!(server.emulator.row_count(), 0, "dry run sends nothing");

    let skip = kb(&url, &["import", file.path(), "--skip-invalid"]);
    assert_eq!(skip.code, 0, "{skip:?}");
    assert_eq!(server.emulator.row_count(), 2);
    assert_eq!(august(&url, SUB, "gallons"), dec("20"));
}

#[test]
fn an_interrupted_import_finishes_without_doubling() {
    let server = TestServer::with_subscriptions(&[SUB]);
    let url = server.url();
    let mut rng = fastrand::Rng::with_seed(9);
    let (amounts, sum) = random_amounts(&mut rng, 2_600);
    let line = |i: usize, amount: &str| format!("{SUB},gallons,2013-08-{:02},{amount}\n", 1 + i % 28);
    let header = "subscription_id,unit_type,record_date,amount\n";
    let full: String = std::iter::once(header.to_string())
        .chain(amounts.iter().enumerate().map(|(i, a)| line(i, a)))
        .collect();
    // The first two requests went through before the "crash".
    let part: String = std::iter::once(header.to_string())
        .chain(amounts.iter().take(2_000).enumerate().map(|(i, a)| line(i, a)))
        .collect();
    let part = TempFile::new("part.csv", part.as_bytes());
    let full = TempFile::new("full.csv", full.as_bytes());
    assert_eq!(kb(&url, &["import", part.path()]).code, 0);
    let run = kb(&url, &["import", full.path(), "--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let json = summary(&run);
    assert_eq!(json["already_recorded_requests"], 2);
    assert_eq!(json["recorded_requests"], 1);
    assert_eq!(json["recorded_rows"], 600);
    assert_eq!(august(&url, SUB, "gallons"), sum);
    assert_eq!(server.emulator.row_count(), 2_600);
}

#[test]
fn an_import_through_faults_finishes_on_rerun_without_doubling() {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config = config.with_subscriptions(vec![SUB.parse().unwrap(), SUB2.parse().unwrap()]);
    config = config.with_faults(Some(Faults::new(0.4, 7)));
    let server = TestServer::start(config);
    let url = server.url();
    let (text, sums) = csv_file(400, 3);
    let file = TempFile::new("faults.csv", text.as_bytes());
    // Small requests, so that there are many of them to fault.
    let args = ["import", file.path(), "--rows-per-request", "10", "--output", "json"];
    // Without retries, like a run that crashed half-way: some requests fail, some of them
    // after their usage was stored.
    let first = kb(&url, &[&args[..], &["--retries", "0"]].concat());
    // Runs again until done (bounded).
    let mut runs = vec![first];
    for _ in 0..10 {
        let last = runs.last().unwrap();
        if last.code == 0 {
            break;
        }
        assert!(last.code == 3 || last.code == 4, "{last:?}");
        runs.push(kb(&url, &args));
    }
    let last = runs.last().unwrap();
    assert_eq!(last.code, 0, "{runs:#?}");
    assert_sums(&url, &sums);
    assert_eq!(server.emulator.row_count(), 400);
    let first = summary(&runs[0]);
    assert!(first["failed_requests"].as_u64().unwrap() > 0, "{first}");
    let faults = &server.stats;
    println!("import through faults: {} runs; server {}", runs.len(), faults);
    assert!(faults.total_faults() > 0);
}

#[test]
fn series_as_table_json_csv_and_svg() {
    let server = TestServer::with_subscriptions(&[SUB]);
    let url = server.url();
    let text = format!(
        "subscription_id,unit_type,record_date,amount\n\
         {SUB},gallons,2013-08-01T06:30:00Z,10\n\
         {SUB},gallons,2013-08-02,5\n\
         {SUB},liters,2013-08-02,2.5\n\
         {SUB},gallons,2013-08-04,1\n"
    );
    let file = TempFile::new("series.csv", text.as_bytes());
    assert_eq!(kb(&url, &["import", file.path()]).code, 0);
    let base = format!("series --subscription {SUB} --from 2013-08-01 --to 2013-08-04");

    let table = kbs(&url, &base);
    assert_eq!(table.code, 0, "{table:?}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines[1], "period      gallons  liters  total");
    assert!(
        lines[2].starts_with("2013-08-01       10       0     10  ████"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("2013-08-02        5     2.5    7.5  ███"),
        "{}",
        lines[3]
    );
    assert_eq!(lines[4], "2013-08-03        0       0      0");
    assert_eq!(lines.len(), 5, "the 4th is excluded: half-open");

    let json = kbs(&url, &format!("{base} --unit gallons --output json"));
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["unit_type"], "gallons");
    assert_eq!(json["periods"].as_array().unwrap().len(), 3);
    assert_eq!(json["periods"][1]["start"], "2013-08-02");
    assert_eq!(json["periods"][1]["end"], "2013-08-03");
    assert_eq!(json["periods"][1]["total"], 5);

    let csv = kbs(
        &url,
        &format!("series --subscription {SUB} --from 2013-08-01 --to 2013-08-15 --every week --output csv"),
    );
    assert_eq!(csv.code, 0, "{csv:?}");
    assert_eq!(
        csv.stdout,
        "period_start,period_end,unit_type,amount\n\
         2013-08-01,2013-08-08,gallons,16\n2013-08-01,2013-08-08,liters,2.5\n\
         2013-08-08,2013-08-15,gallons,0\n2013-08-08,2013-08-15,liters,0\n"
    );

    let svg = TempFile::new("chart.svg", b"");
    let run = kbs(&url, &format!("{base} --svg {}", svg.path()));
    assert_eq!(run.code, 0, "{run:?}");
    let chart = std::fs::read_to_string(&svg.0).unwrap();
    assert!(chart.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    // Gallons on the 1st and 2nd, liters on the 2nd; nothing on the 3rd.
    assert_eq!(
        chart.matches(r#"class="bar""#).count(),
        3,
        "one bar per unit and day with usage"
    );
    assert!(chart.contains(">2.5<") && chart.contains(">2013-08-02<"));
    assert!(chart.contains("<title>2013-08-02 gallons: 5</title>"));
    assert!(chart.trim_end().ends_with("</svg>"));
}

#[test]
fn faults_of_every_kind_are_injected() {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config = config.with_subscriptions(vec![SUB.parse().unwrap()]);
    config = config.with_faults(Some(Faults::new(1.0, 1)));
    let server = TestServer::start(config);
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let response = common::raw_http(
            server.addr,
            format!("GET /1.0/kb/usages/{SUB}?startDate=2013-08-01&endDate=2013-09-01 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        *statuses.entry(common::status_of(&response)).or_insert(0) += 1;
        if common::status_of(&response) == 503 {
            assert!(response.to_ascii_lowercase().contains("retry-after: 0"), "{response}");
        }
    }
    let stats = &server.stats;
    assert_eq!(stats.total_faults(), 40);
    assert_eq!(
        statuses.get(&503).copied().unwrap_or(0),
        stats.faults(&Fault::retry_later(http::StatusCode::SERVICE_UNAVAILABLE))
    );
    assert_eq!(
        statuses.get(&429).copied().unwrap_or(0),
        stats.faults(&Fault::retry_later(http::StatusCode::TOO_MANY_REQUESTS))
    );
    let closed = stats.faults(&Fault::connection_closed()) + stats.faults(&Fault::CommitThenLose);
    assert_eq!(
        statuses.get(&0).copied().unwrap_or(0),
        closed,
        "closed without an answer"
    );
    for kind in Faults::kinds() {
        assert!(stats.faults(&kind) > 0, "{kind:?} never drawn");
    }
}

/// The POST the server holds in flight in the Ctrl-C test (1-based): that many rows are stored
/// when the import stops.
const HELD_POST: usize = 10;

#[test]
fn ctrl_c_stops_an_import_cleanly_and_a_rerun_finishes_it() {
    use std::io::{BufRead, BufReader};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    // The server holds the HELD_POST-th POST until the test lets it go, so that Ctrl-C
    // certainly arrives with a request in flight and rows not sent yet. It blocks one of the
    // server's two worker threads meanwhile, which the other one does not need.
    let (held_tx, held_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let held_tx = std::sync::Mutex::new(held_tx);
    let release_rx = std::sync::Mutex::new(release_rx);
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config = config.with_subscriptions(vec![SUB.parse().unwrap()]);
    let server = TestServer::start_with(
        config,
        Some(Box::new(move |emulator: usage_transport_memory::InMemoryKillBill| {
            let posts = AtomicUsize::new(0);
            let hold = move |request: http::Request<bytes::Bytes>| {
                if request.method() == http::Method::POST && posts.fetch_add(1, Ordering::SeqCst) + 1 == HELD_POST {
                    held_tx.lock().unwrap().send(()).unwrap();
                    release_rx
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(60))
                        .expect("the test lets the held request go");
                }
                emulator.handle(request)
            };
            std::sync::Arc::new(hold)
        })),
    );
    let url = server.url();
    let mut rng = fastrand::Rng::with_seed(21);
    let (amounts, sum) = random_amounts(&mut rng, 3_000);
    let mut text = String::from("subscription_id,unit_type,record_date,amount\n");
    for (i, amount) in amounts.iter().enumerate() {
        text.push_str(&format!("{SUB},gallons,2013-08-{:02},{amount}\n", 1 + i % 28));
    }
    let file = TempFile::new("interrupted.csv", text.as_bytes());
    let args = [
        "import",
        file.path(),
        "--rows-per-request",
        "1",
        "--concurrency",
        "1",
        "--output",
        "json",
    ];
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kb-usage"))
        .args(args)
        .env("KILLBILL_URL", &url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Stderr line by line: the test waits for the import to say it saw the signal.
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines_tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    held_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the held request reaches the server");
    assert_eq!(server.emulator.row_count(), HELD_POST - 1);
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The import has stopped sending before the held request is answered.
    loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the import reports the interruption");
        if line.starts_with("interrupted: finishing the requests in flight") {
            break;
        }
    }
    release_tx.send(()).unwrap();
    let output = common::wait_bounded(child, common::CHILD_TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = reader.join().unwrap();
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{stderr}");
    // The request in flight was finished and counted; the rest was not sent.
    let stored = server.emulator.row_count();
    assert_eq!(stored, HELD_POST);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["recorded_rows"].as_u64().unwrap() as usize, stored, "{json}");
    assert_eq!(
        json["not_sent_requests"].as_u64().unwrap() as usize,
        3_000 - HELD_POST,
        "{json}"
    );
    assert!(
        stderr.contains(&format!(
            "interrupted: {} of 3000 requests not sent; run the same command again",
            3_000 - HELD_POST
        )),
        "{stderr}"
    );
    let rerun = kb(&url, &args);
    assert_eq!(rerun.code, 0, "{rerun:?}");
    let json = summary(&rerun);
    assert_eq!(json["already_recorded_rows"].as_u64().unwrap() as usize, stored);
    assert_eq!(august(&url, SUB, "gallons"), sum);
    assert_eq!(server.emulator.row_count(), 3_000);
}

#[test]
fn tenants_unknown_subscriptions_and_the_legacy_wire_format() {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config = config.with_subscriptions(vec![SUB.parse().unwrap()]);
    config = config.with_tenants(vec![
        ("bob".into(), "lazar".into()),
        ("acme".into(), "acme-secret".into()),
    ]);
    config = config.with_users(vec![("ops".into(), "ops-password".into())]);
    config = config.with_legacy_0_22(true);
    let server = TestServer::start(config);
    let url = server.url();
    let ops = "--user ops --password ops-password";

    // A file naming a subscription that does not exist: the other one is recorded, the
    // failure says which line and which request, exit 3.
    let text = format!(
        "subscription_id,unit_type,record_date,amount\n{SUB},gallons,2013-08-01,2.5\n{SUB2},gallons,2013-08-01,1\n"
    );
    let file = TempFile::new("unknown.csv", text.as_bytes());
    let run = kbs(&url, &format!("import {} {ops}", file.path()));
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("line 3"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("Object id={SUB2} type=SUBSCRIPTION doesn't exist!")),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("recorded:          1 rows in 1 requests"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("failed:            1 rows in 1 requests"),
        "{}",
        run.stdout
    );

    // Kill Bill 0.22 stores integers (the fraction is dropped) and answers with dates.
    let get = kbs(
        &url,
        &format!("get --subscription {SUB} --from 2013-08-01 --to 2013-09-01 {ops}"),
    );
    assert_eq!(get.code, 0, "{get:?}");
    assert!(
        get.stdout.contains("window        [2013-08-01, 2013-09-01)"),
        "{}",
        get.stdout
    );
    assert!(get.stdout.ends_with("gallons         2\n"), "{}", get.stdout);

    // Another tenant does not see it: Kill Bill's 500, shown plainly.
    let other = kbs(
        &url,
        &format!(
            "get --subscription {SUB} --from 2013-08-01 --to 2013-09-01 {ops} --api-key acme --api-secret acme-secret"
        ),
    );
    assert_eq!(other.code, 3, "{other:?}");
    assert!(
        other.stderr.contains("500") && other.stderr.contains("doesn't belong to tenant"),
        "{}",
        other.stderr
    );
    // The default user is gone when users are given.
    let default_user = kbs(
        &url,
        &format!("get --subscription {SUB} --from 2013-08-01 --to 2013-09-01"),
    );
    assert_eq!(default_user.code, 3);
    assert!(default_user.stderr.contains("401"), "{default_user:?}");
}
