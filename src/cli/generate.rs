//! `cxr-edge generate man DIR | bash | zsh | fish`: the manual pages and the shell completions,
//! made from the same clap definitions the program parses its arguments with, so they cannot
//! drift from it (as ripgrep's `--generate`). The packaging scripts run it before cargo-deb,
//! which installs the results (`usr/share/man/man1`, `usr/share/bash-completion/completions`).
//! Hidden from `--help`: it is for packagers, not for the person at the light box.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{CommandFactory, ValueEnum};

use super::{Cli, EXIT_OK};

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum What {
    /// Manual pages: `cxr-edge.1` and one `cxr-edge-SUBCOMMAND.1` per subcommand, into a folder.
    Man,
    /// A bash completion script, on stdout.
    Bash,
    /// A zsh completion script, on stdout.
    Zsh,
    /// A fish completion script, on stdout.
    Fish,
}

/// Write what `what` names: man pages into `out` (required for them), completions to stdout.
pub fn run(what: What, out: Option<PathBuf>) -> Result<i32> {
    let mut cmd = Cli::command();
    let shell = match what {
        What::Man => {
            let dir = out.context("generate man needs a folder: cxr-edge generate man DIR")?;
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("cannot write the manual pages to {}", dir.display()))?;
            return Ok(EXIT_OK);
        }
        What::Bash => clap_complete::Shell::Bash,
        What::Zsh => clap_complete::Shell::Zsh,
        What::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "cxr-edge", &mut std::io::stdout().lock());
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_cover_every_visible_subcommand() {
        let d = tempfile::tempdir().unwrap();
        run(What::Man, Some(d.path().to_path_buf())).unwrap();
        let page = std::fs::read_to_string(d.path().join("cxr-edge.1")).unwrap();
        assert!(page.contains("Research use only"), "{page}");
        for sub in Cli::command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
        {
            let name = format!("cxr-edge-{}.1", sub.get_name());
            assert!(d.path().join(&name).is_file(), "{name}");
        }
        assert!(
            !d.path().join("cxr-edge-generate.1").exists(),
            "hidden stays hidden"
        );
        assert!(run(What::Man, None).is_err());
    }
}
