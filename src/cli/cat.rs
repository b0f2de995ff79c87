//! `coffer cat POINT:PATH`

use super::Global;
use anyhow::{Result, bail};
use coffer::vault::{PointFilter, resolve_point};
use coffer::view::{Entry, View};
use std::io::Write;
use std::process::ExitCode;

pub fn run(g: &Global, spec: &str) -> Result<ExitCode> {
    let (point, path) = super::split_spec(spec, true)?;
    let path = path.expect("required");
    let vault = g.open_reader("cat")?;
    let rec = resolve_point(&vault, &point, &PointFilter::default())?;
    let view = View::new(vault);
    let Entry::Node(node) = view.resolve(&rec, &path)? else {
        bail!("{}: is a directory", path.display())
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    view.write_content(&node, &mut out)
        .map_err(|e| anyhow::anyhow!("{}: {e} (recovery point {})", path.display(), rec.id.short()))?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
