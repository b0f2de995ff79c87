//! `coffer ls`

use super::Global;
use anyhow::Result;
use coffer::format::tree::{Node, NodeKind};
use coffer::vault::resolve_point;
use coffer::view::{Entry, View};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Recovery point: id, id prefix or 'latest'
    point: String,
    /// Directory or file inside the point (default: the root)
    path: Option<PathBuf>,
    /// Long listing: mode, owner, size, time
    #[arg(short = 'l')]
    long: bool,
    /// List everything below PATH
    #[arg(long)]
    recursive: bool,
    /// With 'latest': newest point of this host
    #[arg(long)]
    host: Option<String>,
    /// With 'latest': newest point that backed up this path
    #[arg(long = "path", value_name = "SOURCE")]
    source: Vec<String>,
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let vault = g.open_reader("ls")?;
    let point = resolve_point(&vault, &a.point, &super::list::filter(a.host, vec![], a.source))?;
    let view = View::new(vault);
    let base = Path::new("/").join(coffer::view::relative(a.path.as_deref().unwrap_or(Path::new("/"))));
    let mut rows: Vec<(PathBuf, Node)> = Vec::new();
    match view.resolve(&point, &base)? {
        Entry::Node(n) if n.subtree.is_none() => rows.push((base.clone(), *n)),
        entry => {
            let tree = entry.subtree().expect("directory");
            view.walk(&tree, &base, &mut |path, node| {
                rows.push((path.to_path_buf(), node.clone()));
                Ok(a.recursive)
            })?;
        }
    }
    if g.json {
        let arr: Vec<serde_json::Value> = rows.iter().map(|(p, n)| node_json(p, n)).collect();
        println!("{}", serde_json::to_string_pretty(&arr)?);
    } else {
        for (p, n) in &rows {
            if a.long {
                println!("{}", long_line(p, n))
            } else {
                println!("{}", p.display())
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn kind_name(k: NodeKind) -> &'static str {
    match k {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::CharDevice => "chardev",
        NodeKind::BlockDevice => "blockdev",
        NodeKind::Fifo => "fifo",
    }
}

/// `ls -l` style mode string, with setuid/setgid/sticky shown as s/S, s/S, t/T.
pub fn mode_string(n: &Node) -> String {
    let t = match n.kind {
        NodeKind::File => '-',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::Fifo => 'p',
    };
    let m = n.mode;
    let bit = |b: u32, c: char| if m & b != 0 { c } else { '-' };
    let special = |x: char, special: bool, exec: bool, lower: char| match (special, exec) {
        (true, true) => lower,
        (true, false) => lower.to_ascii_uppercase(),
        _ => x,
    };
    format!(
        "{t}{}{}{}{}{}{}{}{}{}",
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(bit(0o100, 'x'), m & 0o4000 != 0, m & 0o100 != 0, 's'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(bit(0o010, 'x'), m & 0o2000 != 0, m & 0o010 != 0, 's'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(bit(0o001, 'x'), m & 0o1000 != 0, m & 0o001 != 0, 't'),
    )
}

fn long_line(p: &Path, n: &Node) -> String {
    let user = n.user.clone().unwrap_or_else(|| n.uid.to_string());
    let group = n.group.clone().unwrap_or_else(|| n.gid.to_string());
    let time = jiff::Timestamp::new(n.mtime.secs, n.mtime.nanos as i32)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    let mut line = format!(
        "{} {:>3} {:<8} {:<8} {:>12} {} {}",
        mode_string(n),
        n.nlink,
        user,
        group,
        n.size,
        time,
        p.display()
    );
    if n.kind == NodeKind::Symlink {
        line.push_str(&format!(" -> {}", String::from_utf8_lossy(&n.target)));
    }
    line
}

fn node_json(p: &Path, n: &Node) -> serde_json::Value {
    serde_json::json!({
        "path": p.to_string_lossy(),
        "name": String::from_utf8_lossy(&n.name),
        "type": kind_name(n.kind),
        "mode": n.mode & 0o7777,
        "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group,
        "size": n.size,
        "mtime": coffer::util::format_time(jiff::Timestamp::new(n.mtime.secs, n.mtime.nanos as i32).unwrap_or_default()),
        "nlink": n.nlink,
        "inode": n.inode,
        "target": (n.kind == NodeKind::Symlink).then(|| String::from_utf8_lossy(&n.target).into_owned()),
        "xattrs": n.xattrs.iter().map(|x| String::from_utf8_lossy(&x.name).into_owned()).collect::<Vec<_>>(),
    })
}
