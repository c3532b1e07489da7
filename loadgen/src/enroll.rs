//! Registering the simulated terminals with central, each with its own
//! token. Central registers terminals only through its command line
//! (`pos-central terminal add ID --dir DIR` prints the new token; there is
//! no admin route for it), so the generator runs that command once per
//! terminal, a few at a time, or takes tokens registered beforehand.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pos_sync::Token;
use tokio::sync::Semaphore;

use crate::error::LoadError;
use crate::plan::Plan;

/// Registration commands run at once (each is a short process that opens
/// central's database for one insert).
pub const JOBS_DEFAULT: usize = 4;
/// Most registration commands at once.
pub const JOBS_MAX: usize = 64;
/// Most bytes of a tokens file.
pub const TOKENS_FILE_BYTES_MAX: u64 = 64 * 1_048_576;

/// How the terminals get their tokens.
#[derive(Clone, Debug)]
pub enum Enroll {
    /// Runs `program args...` once per terminal, every `{id}` in an
    /// argument replaced by the terminal id; its standard output, trimmed,
    /// is the token (what `pos-central terminal add` prints).
    Command {
        program: PathBuf,
        args: Vec<String>,
        jobs: usize,
    },
    /// Terminals registered beforehand: lines `TERMINAL_ID TOKEN`.
    TokensFile(PathBuf),
}

impl Enroll {
    /// `pos-central terminal add {id} --dir DIR` with `bin`.
    pub fn pos_central(bin: &Path, dir: &Path) -> Enroll {
        Enroll::Command {
            program: bin.to_path_buf(),
            args: vec![
                "terminal".into(),
                "add".into(),
                "{id}".into(),
                "--dir".into(),
                dir.display().to_string(),
            ],
            jobs: JOBS_DEFAULT,
        }
    }
}

/// Every register's token, in register order, and how long getting them
/// took.
pub async fn enroll(plan: &Plan, how: &Enroll) -> Result<(Vec<Token>, Duration), LoadError> {
    let started = Instant::now();
    let tokens = match how {
        Enroll::Command {
            program,
            args,
            jobs,
        } => run_commands(plan, program, args, *jobs).await?,
        Enroll::TokensFile(path) => from_file(plan, path)?,
    };
    Ok((tokens, started.elapsed()))
}

async fn run_commands(
    plan: &Plan,
    program: &Path,
    args: &[String],
    jobs: usize,
) -> Result<Vec<Token>, LoadError> {
    if jobs == 0 || jobs > JOBS_MAX {
        return Err(LoadError::Plan(format!(
            "enroll jobs must be 1..={JOBS_MAX}"
        )));
    }
    let gate = Arc::new(Semaphore::new(jobs));
    let mut running = tokio::task::JoinSet::new();
    for index in 0..plan.registers {
        let id = plan.terminal_id(index);
        let args: Vec<String> = args.iter().map(|a| a.replace("{id}", &id)).collect();
        let program = program.to_path_buf();
        let gate = gate.clone();
        running.spawn(async move {
            let _permit = gate
                .acquire()
                .await
                .map_err(|e| LoadError::Setup(e.to_string()))?;
            let out = tokio::process::Command::new(&program)
                .args(&args)
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .map_err(|e| LoadError::Setup(format!("running {}: {e}", program.display())))?;
            if !out.status.success() {
                return Err(LoadError::Setup(format!(
                    "registering {id}: {} {} failed ({}): {}",
                    program.display(),
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            let token = Token::new(&String::from_utf8_lossy(&out.stdout))?;
            Ok((index, token))
        });
    }
    let mut tokens: Vec<Option<Token>> = vec![None; plan.registers];
    while let Some(done) = running.join_next().await {
        let (index, token) = done.map_err(|e| LoadError::Setup(e.to_string()))??;
        tokens[index] = Some(token);
    }
    tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.ok_or_else(|| LoadError::Setup(format!("no token for register {i}"))))
        .collect()
}

fn from_file(plan: &Plan, path: &Path) -> Result<Vec<Token>, LoadError> {
    let meta = std::fs::metadata(path)?;
    if meta.len() > TOKENS_FILE_BYTES_MAX {
        return Err(LoadError::Plan(format!(
            "{} is over {TOKENS_FILE_BYTES_MAX} bytes",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)?;
    let mut by_id: HashMap<&str, &str> = HashMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (id, token) = line.split_once(char::is_whitespace).ok_or_else(|| {
            LoadError::Plan(format!(
                "{}: a line is not `TERMINAL_ID TOKEN`",
                path.display()
            ))
        })?;
        by_id.insert(id, token.trim());
    }
    (0..plan.registers)
        .map(|i| {
            let id = plan.terminal_id(i);
            let token = by_id
                .get(id.as_str())
                .ok_or_else(|| LoadError::Plan(format!("{}: no token for {id}", path.display())))?;
            Ok(Token::new(token)?)
        })
        .collect()
}
