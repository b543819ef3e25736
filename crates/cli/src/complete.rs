//! Shell completion: `completion bash|zsh|fish|powershell` scripts from clap, and the `__complete`
//! protocol kubectl uses for plugins (it runs `kubectl_complete-<plugin> <args...> <partial>`,
//! which calls `kubectl-<plugin> __complete <args...> <partial>`): candidates one per line, then a
//! `:<directive>` line (4 = no file completion, 0 = default).

use std::io::Write;

use clap::Command;

/// Print a completion script for `shell`.
pub fn script(cmd: &mut Command, shell: clap_complete::Shell, out: &mut impl Write) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, cmd, name, out);
}

/// Directive: do not fall back to file completion.
const NO_FILE_COMP: u8 = 4;
/// Directive: default (file completion allowed).
const DEFAULT: u8 = 0;

/// Candidates for the last word of `args` (the words after the plugin name). Returns the lines to
/// print, ending with the directive line.
pub fn candidates(cmd: &Command, args: &[String]) -> Vec<String> {
    let (partial, words) = match args.split_last() {
        Some((last, rest)) => (last.as_str(), rest),
        None => ("", &[][..]),
    };
    // Walk down the subcommands named so far.
    let mut current = cmd;
    let mut pending_value: Option<&clap::Arg> = None;
    for w in words {
        if pending_value.take().is_some() {
            continue;
        }
        if let Some(arg) = find_flag(current, cmd, w) {
            if takes_value(arg) && !w.contains('=') {
                pending_value = Some(arg);
            }
            continue;
        }
        if let Some(sub) = current.find_subcommand(w) {
            current = sub;
        }
    }
    let mut lines = Vec::new();
    let mut directive = NO_FILE_COMP;
    if let Some(arg) = pending_value {
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        if values.is_empty() {
            directive = DEFAULT;
        }
        lines.extend(values.into_iter().filter(|v| v.starts_with(partial)));
    } else if partial.starts_with('-') {
        for arg in current.get_arguments().chain(cmd.get_arguments().filter(|a| a.is_global_set())) {
            if arg.is_hide_set() {
                continue;
            }
            if let Some(long) = arg.get_long() {
                let flag = format!("--{long}");
                if flag.starts_with(partial) && !lines.contains(&flag) {
                    lines.push(flag);
                }
            }
        }
    } else {
        for sub in current.get_subcommands() {
            if !sub.is_hide_set() && sub.get_name().starts_with(partial) {
                let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
                lines.push(if about.is_empty() { sub.get_name().to_string() } else { format!("{}\t{about}", sub.get_name()) });
            }
        }
        if current.get_subcommands().next().is_none() {
            directive = DEFAULT;
        }
    }
    lines.push(format!(":{directive}"));
    lines
}

fn find_flag<'a>(current: &'a Command, root: &'a Command, word: &str) -> Option<&'a clap::Arg> {
    let name = word.split('=').next().unwrap_or(word);
    let matches = |a: &&clap::Arg| {
        if let Some(long) = name.strip_prefix("--") {
            a.get_long() == Some(long)
        } else if let Some(short) = name.strip_prefix('-') {
            short.len() == 1 && a.get_short() == short.chars().next()
        } else {
            false
        }
    };
    current.get_arguments().find(matches).or_else(|| root.get_arguments().find(matches))
}

fn takes_value(arg: &clap::Arg) -> bool {
    // `num_args` is only filled in when the command is built; the action is known before.
    arg.get_num_args().map_or_else(|| arg.get_action().takes_values(), |n| n.takes_values())
}

/// Answer kubectl's plugin-completion call when argv is `<bin> __complete <words...>`: prints the
/// candidates and returns true. Called before clap parses anything.
pub fn intercept(cmd: &Command) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("__complete") {
        return false;
    }
    let mut out = std::io::stdout().lock();
    for line in candidates(cmd, &args[1..]) {
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn cmd() -> Command {
        Command::new("kubectl-x")
            .arg(Arg::new("output").short('o').long("output").global(true).value_parser(["table", "json"]))
            .arg(Arg::new("no-color").long("no-color").global(true).action(ArgAction::SetTrue))
            .subcommand(Command::new("audit").about("Audit"))
            .subcommand(Command::new("apply"))
    }

    #[test]
    fn completes_subcommands_flags_and_values() {
        let c = cmd();
        assert_eq!(candidates(&c, &["a".into()]), vec!["audit\tAudit", "apply", ":4"]);
        assert_eq!(candidates(&c, &["audit".into(), "--no".into()]), vec!["--no-color", ":4"]);
        assert_eq!(candidates(&c, &["audit".into(), "-o".into(), "j".into()]), vec!["json", ":4"]);
        assert_eq!(candidates(&c, &["audit".into(), "".into()]), vec![":0"]);
    }
}
