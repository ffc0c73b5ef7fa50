//! Hostile scripts, one per way a script can take memory or time, each under the CLI and the
//! hook limits: every one ends, by a limit or by finishing, with the heap it grew near the
//! memory limit.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, EvalAltResult};

use super::{Clock, Limits, MIB, new_engine};
use crate::heap;
use crate::search::SearchPath;

/// How a script ended.
#[derive(Debug)]
enum End {
    Finished(Dynamic),
    /// Stopped by the memory or time limit, or refused by a sized call: the error's message.
    Limit(String),
    Operations,
    StackOverflow,
}

/// Runs `script` under `limits`: how it ended and the most its run grew the heap by.
fn run(limits: &Limits, script: &str) -> (End, usize) {
    let engine = new_engine(limits, Arc::new(SearchPath::stdlib_only()));
    let ast = engine.compile(script).expect("the script compiles");
    heap::start_run();
    let result = engine.eval_ast::<Dynamic>(&ast);
    let peak = heap::peak_grown().max(0) as usize;
    let end = match result {
        Ok(value) => End::Finished(value),
        Err(err) => match *err {
            EvalAltResult::ErrorTooManyOperations(_) => End::Operations,
            EvalAltResult::ErrorStackOverflow(_) => End::StackOverflow,
            EvalAltResult::ErrorTerminated(value, _) | EvalAltResult::ErrorRuntime(value, _)
                if is_limit(&value) =>
            {
                End::Limit(value.read_lock::<rhai::Map>().unwrap()["message"].to_string())
            }
            other => panic!("{script}: ended by something else: {other}"),
        },
    };
    (end, peak)
}

fn is_limit(value: &Dynamic) -> bool {
    value
        .read_lock::<rhai::Map>()
        .is_some_and(|map| map.get("kind").is_some_and(|k| k.to_string() == "limit"))
}

const PROFILES: [(&str, Limits); 2] = [("cli", Limits::CLI), ("hook", Limits::HOOK)];

/// `script` is stopped by the memory limit under both profiles, its heap never grown past
/// `slack` times the limit.
fn stopped_for_memory_near_limit(script: &str, slack: f64) {
    for (profile, limits) in PROFILES {
        let (end, peak) = run(&limits, script);
        let End::Limit(message) = &end else {
            panic!("{profile}: {script}: not stopped by a limit: {end:?}");
        };
        assert!(
            message.contains(&format!("{} MiB", limits.memory / MIB)),
            "{profile}: names the limit: {message}"
        );
        let most = (limits.memory as f64 * slack) as usize;
        assert!(
            peak <= most,
            "{profile}: {script}: grew the heap by {} MiB, more than {} MiB",
            peak / MIB,
            most / MIB
        );
    }
}

/// A string of `bytes` bytes, made at once.
fn big_string(bytes: usize) -> String {
    format!("let s = \"\"; s.pad({bytes}, \"x\");")
}

#[test]
fn splitting_sixteen_megabytes_into_characters_stays_near_the_limit() {
    // Each character becomes a string of its own: about 60 bytes a byte, so 16 MB fit the
    // command line's limit (and are made), 32 MB do not, and neither fits a hook's.
    let split = |mib| format!("{} s.split(\"\").len()", big_string(mib * MIB));
    let (end, peak) = run(&Limits::CLI, &split(16));
    assert!(
        matches!(&end, End::Finished(v) if v.as_int() == Ok(16 * MIB as i64 + 2)),
        "{end:?}"
    );
    assert!(peak <= Limits::CLI.memory, "{} MiB", peak / MIB);
    for (profile, limits, mib) in [("cli", Limits::CLI, 32), ("hook", Limits::HOOK, 16)] {
        let (end, peak) = run(&limits, &split(mib));
        assert!(matches!(end, End::Limit(_)), "{profile}: {end:?}");
        assert!(
            peak <= 2 * mib * MIB,
            "{profile}: refused before it is made"
        );
    }
    // Splitting what fits is still Rhai's split.
    let (end, _) = run(&Limits::HOOK, "\"a,b,,c\".split(\",\")");
    assert!(
        matches!(&end, End::Finished(v) if v.to_string() == r#"["a", "b", "", "c"]"#),
        "{end:?}"
    );
}

#[test]
fn pushing_is_linear() {
    let pushes = |n: u64| format!("let a = []; for i in 0..{n} {{ a.push(i); }} a.len()");
    for (profile, limits) in PROFILES {
        let (end, _) = run(&limits, &pushes(90_000));
        assert!(
            matches!(&end, End::Finished(v) if v.as_int() == Ok(90_000)),
            "{profile}: {end:?}"
        );
    }
    let (end, _) = run(&Limits::CLI, &pushes(1_000_000));
    assert!(
        matches!(&end, End::Finished(v) if v.as_int() == Ok(1_000_000)),
        "{end:?}"
    );
    let (end, _) = run(&Limits::HOOK, &pushes(1_000_000));
    assert!(
        matches!(end, End::Operations),
        "a hook's operations: {end:?}"
    );
}

#[test]
fn a_string_grown_in_a_loop_stops_near_the_limit() {
    let chunk = "let c = \"\"; c.pad(65536, \"x\");";
    // The heap counts what the string reserved: doubling, up to half again what it holds.
    stopped_for_memory_near_limit(&format!("{chunk} let s = \"\"; loop {{ s += c; }}"), 1.5);
    // Doubling by `+` keeps the old string while the new one, with room to grow, is made: the
    // watch sees it only after, at up to about twice the limit.
    stopped_for_memory_near_limit("let s = \" \"; loop { s = s + s; }", 2.2);
}

#[test]
fn sorting_the_biggest_list_a_hook_can_make_finishes() {
    let script = "let s = \"\"; s.pad(1 << 19, \"zyxwvu\"); let a = s.split(\"\"); \
                  a.sort(); `${a.len()} ${a[2]} ${a[a.len() - 3]}`";
    for (profile, limits) in PROFILES {
        let (end, peak) = run(&limits, script);
        assert!(
            matches!(&end, End::Finished(v) if v.to_string() == format!("{} u z", (1 << 19) + 2)),
            "{profile}: {end:?}"
        );
        assert!(peak <= limits.memory, "{profile}: {} MiB", peak / MIB);
    }
}

#[test]
fn a_growing_map_stops_near_the_limit() {
    stopped_for_memory_near_limit(
        "let m = #{}; let i = 0; loop { m[`k${i}`] = blob(4096); i += 1; }",
        1.1,
    );
}

#[test]
fn deep_recursion_stops_at_the_call_depth() {
    let script = "fn down(n, s) { down(n + 1, s + \"x\") } down(0, \"\")";
    for (profile, limits) in PROFILES {
        let (end, _) = run(&limits, script);
        assert!(matches!(end, End::StackOverflow), "{profile}: {end:?}");
    }
}

#[test]
fn padding_is_refused_before_anything_is_made() {
    for script in [
        "let s = \"\"; s.pad(1 << 40, \"x\"); s",
        "let a = []; a.pad(1 << 40, 0); a",
    ] {
        for (profile, limits) in PROFILES {
            let (end, peak) = run(&limits, script);
            assert!(matches!(end, End::Limit(_)), "{profile}: {end:?}");
            assert!(peak < MIB, "{profile}: made {peak} bytes first");
        }
    }
    // Each copy of a list item is a deep one: a thousand copies of 8 MiB are 8 GiB.
    stopped_for_memory_near_limit(
        "let row = blob(8 << 20); let a = []; a.pad(1000, row); a",
        1.1,
    );
}

#[test]
fn one_call_that_multiplies_text_stops_near_the_limit() {
    let shared_string = "let s = \"\"; s.pad(1 << 20, \"x\"); let a = []; a.pad(100000, s);";
    for script in [
        // One string a hundred thousand times: 1.6 MB of list, 100 GB of text.
        format!("{shared_string} a.to_string().len()"),
        format!("{shared_string} `${{a}}`.len()"),
        format!("{shared_string} (\"\" + a).len()"),
        format!("{shared_string} let m = #{{ a: a }}; m.to_json().len()"),
        format!("{shared_string} let m = #{{ a: a }}; `${{m}}`.len()"),
        // A substitute copied once per match.
        "let s = \"\"; s.pad(1 << 20, \"x\"); let t = \"\"; t.pad(100000, \"a\"); \
         t.replace(\"a\", s); t"
            .to_string(),
        format!("{} s.to_chars().len()", big_string(64 * MIB)),
        format!("{} s.split(\"x\", 1 << 40).len()", big_string(32 * MIB)),
        format!("{} s.split_rev('x').len()", big_string(32 * MIB)),
    ] {
        stopped_for_memory_near_limit(&script, 1.5);
    }
}

#[test]
fn closures_made_in_a_loop_are_stopped() {
    let script = "let fs = []; loop { let x = fs; fs.push(|| x.len()); }";
    for (profile, limits) in PROFILES {
        let (end, peak) = run(&limits, script);
        assert!(
            matches!(end, End::Operations | End::Limit(_)),
            "{profile}: {end:?}"
        );
        assert!(peak <= limits.memory + limits.memory / 2, "{profile}");
    }
}

#[test]
fn an_empty_loop_is_stopped_by_operations() {
    for (profile, limits) in PROFILES {
        let (end, _) = run(&limits, "while true {}");
        assert!(matches!(end, End::Operations), "{profile}: {end:?}");
    }
}

/// Limits with no operation count, so only the clock can stop a loop.
fn timed(time: Duration, clock: Clock) -> Limits {
    Limits {
        operations: 0,
        time,
        clock,
        ..Limits::HOOK
    }
}

#[test]
fn the_clock_stops_what_operations_would_not() {
    for clock in [Clock::Wall, Clock::Busy] {
        let (end, _) = run(&timed(Duration::from_millis(300), clock), "while true {}");
        let End::Limit(message) = &end else {
            panic!("{clock:?}: {end:?}");
        };
        assert!(
            message.contains("more than its 0.3 s") && message.contains("split it"),
            "{clock:?}: names the limit and a way out: {message}"
        );
    }
}

#[test]
fn waiting_counts_against_the_wall_clock_only() {
    let limits = |clock| timed(Duration::from_millis(200), clock);
    // Enough operations after the nap for the watch to look at the clock.
    let script = "nap(400); let x = 0; for i in 0..1000 { x += 1; } x";
    let run_with_nap = |limits: &Limits| {
        let mut engine = new_engine(limits, Arc::new(SearchPath::stdlib_only()));
        engine.register_fn("nap", |ms: rhai::INT| {
            std::thread::sleep(Duration::from_millis(ms as u64))
        });
        heap::start_run();
        engine.eval::<Dynamic>(script)
    };
    let busy = run_with_nap(&limits(Clock::Busy)).expect("a nap is not computing");
    assert_eq!(busy.as_int(), Ok(1000));
    let err = run_with_nap(&limits(Clock::Wall)).expect_err("a hook's nap counts");
    let (EvalAltResult::ErrorTerminated(value, _) | EvalAltResult::ErrorRuntime(value, _)) = &*err
    else {
        panic!("{err}");
    };
    assert!(is_limit(value), "{value}");
}

/// The bounded versions answer as Rhai's own do.
#[test]
fn sized_functions_answer_as_rhai_does() {
    let plain = rhai::Engine::new();
    let kip = new_engine(&Limits::HOOK, Arc::new(SearchPath::stdlib_only()));
    for expr in [
        r#""a,b,,c".split(",")"#,
        r#""a,b,,c".split(",", 2)"#,
        r#""a,b,,c".split(',')"#,
        r#""a,b,,c".split(',', 3)"#,
        r#""a,b,,c".split(",", 0)"#,
        r#""abc".split("")"#,
        r#""".split(",")"#,
        r#""abc".split(";")"#,
        r#""  a  b c ".split()"#,
        r#""".split()"#,
        r#""a,b,,c".split_rev(",")"#,
        r#""a,b,,c".split_rev(",", 2)"#,
        r#""a,b,,c".split_rev(',')"#,
        r#""a,b,,c".split_rev(',', 2)"#,
        r#""héllo".to_chars()"#,
        r#"let s = "a-b-c"; s.replace("-", "+="); s"#,
        r#"let s = "a-b-c"; s.replace("-", '+'); s"#,
        r#"let s = "a-b-c"; s.replace('-', "<>"); s"#,
        r#"let s = "a-b-c"; s.replace('-', '_'); s"#,
        r#"let s = "abc"; s.replace("", "."); s"#,
        r#"let s = ""; s.replace("", "."); s"#,
        r#"[1, "two", 'c', [3.5, ()], #{x: true}].to_string()"#,
        r#"let a = [1, "two"]; `${a} ${a.to_debug()} ${debug(a)} ${print(a)}`"#,
        r#"#{b: [1, "x"], a: #{c: ()}, "key with space": 'q'}.to_string()"#,
        r#"#{b: [1, "x\n"], a: #{c: ()}}.to_json()"#,
        r#""list: " + [1, 2]"#,
        r#"blob(3, 0x41).to_array()"#,
        r#"[].to_string() + #{}.to_string()"#,
    ] {
        let ours = kip.eval::<Dynamic>(expr).expect(expr).to_string();
        let rhais = plain.eval::<Dynamic>(expr).expect(expr).to_string();
        assert_eq!(ours, rhais, "{expr}");
    }
}
