//! The `coffer` binary: parse arguments, call the library, print, map errors to exit codes.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "coffer: internal error{at}: {} (please report this)",
            msg.unwrap_or_else(|| "panic".into())
        );
    }));
    let args: Vec<String> = std::env::args().collect();
    let invoked_as = args.first().and_then(|a| a.rsplit('/').next()).unwrap_or("");
    if args.get(1).map(String::as_str) == Some("__guard") {
        std::process::exit(coffer::backup::freeze::guard_main(&args[2..]));
    }
    let result = if invoked_as.starts_with("mount.fuse.coffer") || invoked_as == "mount.coffer" {
        cli::mount_helper(&args[1..])
    } else {
        cli::run()
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("coffer: error: {}", cli::one_line(&e));
            ExitCode::from(1)
        }
    }
}
