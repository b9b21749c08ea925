//! The `revlake` binary: parse the command line, run it, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    // clap admits only the formats `LogFormat` parses.
    let log_format = args.global.log_format.parse().unwrap_or_default();
    revlake::telemetry::init(args.global.verbosity(), log_format);
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            // Print the chain once: the outermost message, then each cause.
            let mut message = format!("error: {err}");
            for cause in err.chain().skip(1) {
                let text = cause.to_string();
                if !message.contains(&text) {
                    message.push_str(&format!("\n  caused by: {text}"));
                }
            }
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
