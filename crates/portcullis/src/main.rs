//! The `portcullis` command: try it (demo), serve the gateway, check a configuration or a policy, mint development tokens,
//! read the audit trail and act on it.

mod admin;
mod api_sessions;
mod approvals;
mod approvals_cli;
mod audit;
mod config;
mod console;
mod demo;
mod guard;
mod http;
mod http_approvals;
mod http_audit;
mod http_mask;
mod masking;
mod mcp;
mod notify;
mod policy_check;
mod postgres;
mod preview;
mod serve;
mod sessions;
mod telemetry;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;

/// Portcullis: a data-path gateway for machine identities.
///
/// Agents connect with standard clients and a short-lived token from an identity provider; Portcullis
/// verifies the token and opens the upstream connection with credentials only it holds.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Try Portcullis in one command: a throwaway PostgreSQL with synthetic customers, the gateway in
    /// front of it, and a scripted agent going through it.
    ///
    /// The agent reads customers (emails and card numbers come back masked), tries a DROP TABLE (refused,
    /// naming the policy), updates without and with a WHERE clause, and sends a DELETE that waits for a
    /// reviewer: approve it in the web console or with `portcullis approvals approve` (the demo prints
    /// both), or pass --auto-approve. It ends with the replay of the agent's session from the audit
    /// trail and the hash chain verified.
    ///
    /// Needs PostgreSQL's server binaries (Debian's postgresql package; or set PORTCULLIS_PG_BIN_DIR).
    /// Everything lives in a temporary directory, removed on exit.
    ///
    /// Example: portcullis demo --auto-approve
    Demo(demo::Args),
    /// Run the gateway.
    Serve {
        /// The TOML configuration file.
        #[arg(long, short, env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
    },
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Work with Cedar policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Development tokens from the built-in issuer.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The audit trail: list, show, replay and verify recorded sessions; end a live one.
    Sessions {
        #[command(subcommand)]
        command: sessions::Command,
    },
    /// Bar an identity: gateways refuse its new sessions and end its live ones, until a time or
    /// indefinitely. Recorded in the audit store; every gateway sharing the store obeys.
    ///
    /// Example: portcullis revoke -c portcullis.toml --subject deploy-bot --issuer corp --until 2h
    Revoke(sessions::RevokeArgs),
    /// Just-in-time approval: list the statements held for a reviewer, approve or deny them (through a
    /// running gateway's admin API, with a reviewer's token).
    ///
    /// Example: portcullis approvals approve apr_0f3c... -c portcullis.toml --token "$REVIEWER_TOKEN"
    Approvals {
        #[command(subcommand)]
        command: approvals_cli::Command,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file: syntax, types, unknown keys, secret references. Exits non-zero and
    /// names the offending key on error.
    Check {
        /// The TOML configuration file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Decide statements as the gateway would, without touching any database: prints each statement's
    /// facts, the decision, and the policies that made it. Exits 0 when every statement is allowed, 1
    /// when any is refused or needs approval.
    ///
    /// Example: portcullis policy check --config portcullis.toml --subject bot --group agents
    /// --connection app --sql "DELETE FROM orders WHERE id = 7"
    ///
    /// HTTP: --connection crm --http "DELETE /crm/customers/42" [--header "x-trace: on"] [--body '{...}']
    Check(Box<policy_check::Args>),
    /// Print the Cedar schema policies are validated against.
    Schema,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a token signed by the development issuer ([identity.dev_issuer] must be enabled).
    ///
    /// Use it as the password: psql "host=127.0.0.1 port=6432 dbname=<connection> user=<you>
    /// password=$(portcullis token mint --config portcullis.toml --sub me --group agents)"
    Mint {
        #[arg(long, short, env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
        /// The token's subject (`sub`): who the agent is.
        #[arg(long)]
        sub: String,
        /// A group for the groups claim; repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Lifetime, e.g. 15m, 1h.
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Serve { config } => {
            let config = Config::load(&config)?;
            telemetry::init_logging(config.server.log_format);
            runtime()?.block_on(serve::serve(config))
        }
        Command::Policy {
            command: PolicyCommand::Check(args),
        } => {
            if policy_check::run(&args)? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Command::Policy {
            command: PolicyCommand::Schema,
        } => {
            print!("{}", portcullis_policy::PolicySet::schema_text());
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let config = Config::load(&file)?;
            let policies = config.load_policies()?;
            println!(
                "{}: ok ({} connection(s), {} issuer(s), {} polic{}{})",
                file.display(),
                config.connections.len(),
                config.identity.issuers.len(),
                policies.len(),
                if policies.len() == 1 { "y" } else { "ies" },
                if config.identity.dev_issuer.enabled {
                    ", development issuer enabled"
                } else {
                    ""
                }
            );
            Ok(())
        }
        Command::Sessions { command } => {
            if sessions::run(&command)? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Command::Revoke(args) => sessions::revoke(&args),
        Command::Approvals { command } => approvals_cli::run(&command),
        Command::Token {
            command:
                TokenCommand::Mint {
                    config,
                    sub,
                    groups,
                    ttl,
                },
        } => {
            let config = Config::load(&config)?;
            println!("{}", serve::mint_dev_token(&config, sub, groups, ttl)?.expose());
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}
