//! The `tokengate` command: `run` (default), `check`, `keygen`.

// Nothing the network, a user or a store controls may panic the gateway: outside tests,
// `unwrap` and `expect` are refused by the linter (the one exception, the OS failing to
// give randomness, says why where it is allowed).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::PathBuf;
use std::process::ExitCode;

use tokengate::config::Config;

const USAGE: &str = "usage:
  tokengate [run] [--config PATH]       serve (default config: config/tokengate.toml)
  tokengate check [--config PATH] [--online]
                                        validate the configuration; with --online also
                                        read the provider's discovery document; exit 1 on
                                        any problem
  tokengate keygen                      print a fresh random 32-byte key, base64";

enum Command {
    Run,
    Check,
    Keygen,
}

struct Args {
    command: Command,
    config: PathBuf,
    online: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut command = None;
    let mut config = PathBuf::from("config/tokengate.toml");
    let mut online = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "run" | "check" | "keygen" if command.is_none() => {
                command = Some(match arg.as_str() {
                    "run" => Command::Run,
                    "check" => Command::Check,
                    _ => Command::Keygen,
                });
            }
            "--config" | "-c" => {
                config = it.next().ok_or("--config needs a path")?.into();
            }
            "--online" => online = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        command: command.unwrap_or(Command::Run),
        config,
        online,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("tokengate: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match args.command {
        Command::Keygen => {
            use base64::Engine;
            let key = tokengate::crypto::random_bytes::<32>();
            println!("{}", base64::engine::general_purpose::STANDARD.encode(key));
            ExitCode::SUCCESS
        }
        Command::Check => match Config::load(&args.config) {
            Ok(config) if args.online => check_online(&args.config, &config),
            Ok(_) => {
                println!("{}: ok", args.config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {} problem(s)", args.config.display(), e.problems.len());
                for p in &e.problems {
                    eprintln!("  {p}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Run => run(&args.config),
    }
}

/// The runtime of a command, and of the first worker when serving (see `app::serve`):
/// one thread, tokio's current-thread scheduler.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("tokengate: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

fn check_online(path: &std::path::Path, config: &Config) -> ExitCode {
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let report = runtime.block_on(tokengate::oidc::online_check::run(config));
    println!("{}: provider {}", path.display(), config.oidc.issuer);
    for line in &report.lines {
        println!("  {line}");
    }
    if report.problems.is_empty() {
        println!("{}: ok", path.display());
        return ExitCode::SUCCESS;
    }
    eprintln!("{}: {} problem(s)", path.display(), report.problems.len());
    for p in &report.problems {
        eprintln!("  {p}");
    }
    ExitCode::FAILURE
}

fn run(path: &std::path::Path) -> ExitCode {
    tokengate::logging::init();
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {} problem(s)", path.display(), e.problems.len());
            for p in &e.problems {
                eprintln!("  {p}");
            }
            return ExitCode::FAILURE;
        }
    };
    // Logging started before the file was read, at RUST_LOG's level; from here on
    // `[log] level`, when set, wins. Validation has read it already.
    if let Some(level) = &config.log.level {
        if let Err(e) = tokengate::logging::set_level(level) {
            eprintln!("tokengate: log.level: {e}");
        }
    }
    // Workers: `server.workers`, or one per CPU this process may use (its affinity and
    // CPU quota), as nginx's `worker_processes auto`.
    let workers = config
        .server
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let listen = config.server.listen;
    let listeners = match tokengate::app::bind_public(listen, workers) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tokengate: server.listen: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let code = runtime.block_on(async {
        let admin_listen = config.server.admin_listen;
        let listeners = match listeners
            .into_iter()
            .map(tokio::net::TcpListener::from_std)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tokengate: server.listen: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let admin = match tokio::net::TcpListener::bind(admin_listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tokengate: server.admin_listen: cannot listen on {admin_listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(%listen, admin = %admin_listen, workers, "tokengate listening");
        let reload_from = Some(path.to_owned());
        let serving = tokengate::app::serve_reloading(
            config,
            reload_from,
            listeners,
            admin,
            tokengate::shutdown::signal(),
        );
        match serving.await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tokengate: {e}");
                ExitCode::FAILURE
            }
        }
    });
    // Access lines gathered for a batch (tokengate::logging) are written before the end.
    tokengate::logging::flush();
    code
}
