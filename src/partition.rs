//! Reading MBR and GPT partition tables from a disk image or block device, so a whole-disk backup can record its
//! layout and browse each partition as its own volume.
//!
//! Only positional reads inside `0..size` are issued, every on-disk number is range-checked with checked arithmetic,
//! and anything unrecognisable yields `Ok(None)`: the input is untrusted and must never cause a panic.
//!
//! Detection follows Linux: GPT is used only behind a protective MBR (an entry of type 0xEE), with the primary header
//! at LBA 1 and the backup at the last LBA, each checked by signature, `my_lba` and both CRCs; otherwise the MBR is
//! read, extended partitions are followed through their EBR chain.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    Mbr,
    Gpt,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Partition number as Linux names it: GPT entry index + 1; MBR primary 1-4, logical partitions 5, 6, ... in
    /// chain order.
    pub number: u32,
    /// Byte offset of the first byte on the disk.
    pub start: u64,
    /// Length in bytes. An extended MBR container is listed with its full length (as sfdisk does; Linux shows it as
    /// 1 KiB); a partition running past the end of the disk is clamped to the disk.
    pub length: u64,
    /// GPT: the type GUID in the usual lowercase text form (e.g. "0fc63daf-8483-4772-8e79-3d69d8477de4");
    /// MBR: the type byte as two lowercase hex digits (e.g. "83").
    #[serde(rename = "type")]
    pub type_id: String,
    /// GPT partition name (UTF-16LE decoded, cut at the first NUL); empty for MBR.
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionTable {
    pub kind: TableKind,
    pub sector_size: u32,
    pub partitions: Vec<Partition>,
}

/// Positional reader, like `std::os::unix::fs::FileExt::read_exact_at`.
type ReadAt<'a> = dyn FnMut(u64, &mut [u8]) -> io::Result<()> + 'a;

const MBR_SECTOR: u64 = 512;
const GPT_SECTOR_SIZES: [u64; 2] = [512, 4096];
/// Most logical partitions (and EBRs) followed in one extended partition: guards against loops in the chain.
const MAX_LOGICAL: usize = 128;
/// Largest GPT entry array read; the usual one is 16 KiB, this bounds memory on hostile input.
const MAX_GPT_ENTRIES_BYTES: u64 = 4 << 20;
const PROTECTIVE: u8 = 0xee;

/// Reads the partition table of a disk of `size` bytes through `read_at(offset, buf)` (positional reads, like
/// std::os::unix::fs::FileExt::read_exact_at). Ok(None) when the disk has no recognisable table (e.g. a bare file
/// system); Err only for I/O errors. Never panics on arbitrary bytes.
pub fn read_table(size: u64, read_at: &mut ReadAt) -> io::Result<Option<PartitionTable>> {
    match read_block(size, read_at, 0, MBR_SECTOR)? {
        Some(mbr) if has_boot_signature(&mbr) && mbr_entries(&mbr).iter().any(|e| e.kind == PROTECTIVE) => {
            read_gpt(size, read_at)
        }
        Some(mbr) if has_boot_signature(&mbr) => read_mbr(size, read_at, &mbr),
        _ => Ok(None),
    }
}

/// Reads `len` bytes at `offset`, or `None` when that range is not wholly inside the disk.
fn read_block(size: u64, read_at: &mut ReadAt, offset: u64, len: u64) -> io::Result<Option<Vec<u8>>> {
    match offset.checked_add(len) {
        Some(end) if end <= size => {
            let mut buf = vec![0u8; len as usize];
            read_at(offset, &mut buf)?;
            Ok(Some(buf))
        }
        _ => Ok(None),
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | (u64::from(le32(b, at + 4)) << 32)
}

/// Byte range of a partition in sectors `first..first + count`, clamped to the disk; `None` when it is empty or
/// starts outside the disk.
fn byte_range(size: u64, sector: u64, first: u64, count: u64) -> Option<(u64, u64)> {
    let start = first.checked_mul(sector)?;
    if count == 0 || start >= size {
        return None;
    }
    let length = count.saturating_mul(sector).min(size - start);
    Some((start, length))
}

// ---- CRC32 (IEEE 802.3, reflected, as GPT uses) ----

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, &b| {
        CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

// ---- GPT ----

/// The header fields needed to find and check the entry array.
struct GptHeader {
    entries_lba: u64,
    count: u64,
    entry_size: u64,
    entries_crc: u32,
}

/// Tries each sector size, primary header first, then the backup at the last LBA. `None` if no copy is valid.
fn read_gpt(size: u64, read_at: &mut ReadAt) -> io::Result<Option<PartitionTable>> {
    for sector in GPT_SECTOR_SIZES {
        let last = (size / sector).saturating_sub(1);
        for lba in [1, last].into_iter().filter(|&lba| lba > 0) {
            if let Some(table) = read_gpt_copy(size, read_at, sector, lba)? {
                return Ok(Some(table));
            }
        }
    }
    Ok(None)
}

fn read_gpt_copy(size: u64, read_at: &mut ReadAt, sector: u64, lba: u64) -> io::Result<Option<PartitionTable>> {
    let Some(block) = read_block(size, read_at, lba * sector, sector)? else {
        return Ok(None);
    };
    let Some(header) = parse_gpt_header(&block, lba) else {
        return Ok(None);
    };
    // An overflowing offset saturates to u64::MAX, which read_block rejects as outside the disk.
    let offset = header.entries_lba.saturating_mul(sector);
    match read_block(size, read_at, offset, header.count * header.entry_size)? {
        Some(entries) if crc32(&entries) == header.entries_crc => {
            let partitions = entries
                .chunks_exact(header.entry_size as usize)
                .enumerate()
                .filter_map(|(i, e)| gpt_partition(size, sector, i, e))
                .collect();
            Ok(Some(PartitionTable {
                kind: TableKind::Gpt,
                sector_size: sector as u32,
                partitions,
            }))
        }
        _ => Ok(None),
    }
}

/// Checks signature, header size, header CRC, that the header says it lives at `lba`, and that the entry array has a
/// sane shape (entries a multiple of 128 bytes, total size bounded).
fn parse_gpt_header(block: &[u8], lba: u64) -> Option<GptHeader> {
    if block.len() < 92 || &block[..8] != b"EFI PART" {
        return None;
    }
    let header_size = le32(block, 12) as usize;
    if !(92..=block.len()).contains(&header_size) || le64(block, 24) != lba {
        return None;
    }
    let mut copy = block[..header_size].to_vec();
    copy[16..20].fill(0);
    if crc32(&copy) != le32(block, 16) {
        return None;
    }
    let (count, entry_size) = (u64::from(le32(block, 80)), u64::from(le32(block, 84)));
    if entry_size < 128 || entry_size % 128 != 0 || count * entry_size > MAX_GPT_ENTRIES_BYTES {
        return None;
    }
    Some(GptHeader {
        entries_lba: le64(block, 72),
        count,
        entry_size,
        entries_crc: le32(block, 88),
    })
}

/// One GPT entry, or `None` when unused (all-zero type GUID) or outside the disk.
fn gpt_partition(size: u64, sector: u64, index: usize, e: &[u8]) -> Option<Partition> {
    if e[..16].iter().all(|&b| b == 0) {
        return None;
    }
    let (first, last) = (le64(e, 32), le64(e, 40));
    let count = last.checked_sub(first)?.checked_add(1)?;
    let (start, length) = byte_range(size, sector, first, count)?;
    Some(Partition {
        number: u32::try_from(index).ok()?.checked_add(1)?,
        start,
        length,
        type_id: guid_text(&e[..16]),
        name: utf16_name(&e[56..128]),
    })
}

/// GUID text form; the first three fields are little-endian on disk, the rest is a plain byte string.
fn guid_text(g: &[u8]) -> String {
    let tail: String = g[10..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{tail}",
        le32(g, 0),
        le16(g, 4),
        le16(g, 6),
        g[8],
        g[9]
    )
}

/// UTF-16LE name up to the first NUL; invalid surrogates become U+FFFD.
fn utf16_name(raw: &[u8]) -> String {
    let units = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0);
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

// ---- MBR ----

/// One 16-byte MBR / EBR entry; `start` is in sectors, relative to a base that depends on the entry's role.
#[derive(Clone, Copy)]
struct MbrEntry {
    status: u8,
    kind: u8,
    start: u64,
    sectors: u64,
}

impl MbrEntry {
    fn is_empty(&self) -> bool {
        self.kind == 0 || self.sectors == 0
    }

    fn is_extended(&self) -> bool {
        matches!(self.kind, 0x05 | 0x0f | 0x85)
    }
}

fn has_boot_signature(sector: &[u8]) -> bool {
    sector.len() >= 512 && sector[510] == 0x55 && sector[511] == 0xaa
}

fn mbr_entries(sector: &[u8]) -> [MbrEntry; 4] {
    std::array::from_fn(|i| {
        let e = &sector[446 + 16 * i..462 + 16 * i];
        MbrEntry {
            status: e[0],
            kind: e[4],
            start: u64::from(le32(e, 8)),
            sectors: u64::from(le32(e, 12)),
        }
    })
}

/// Whether sector 0 looks like a FAT / NTFS boot sector: an x86 jump followed by a BIOS parameter block with a
/// power-of-two sector size. Such a volume also ends in 0x55AA.
fn looks_like_fs_boot_sector(sector: &[u8]) -> bool {
    let jump = sector[0] == 0xe9 || (sector[0] == 0xeb && sector[2] == 0x90);
    let bytes_per_sector = le16(sector, 11);
    jump && (512..=4096).contains(&bytes_per_sector) && bytes_per_sector.is_power_of_two()
}

/// The MBR in `sector` 0: primaries 1-4, then the logical partitions of each extended one, numbered from 5.
fn read_mbr(size: u64, read_at: &mut ReadAt, sector: &[u8]) -> io::Result<Option<PartitionTable>> {
    let entries = mbr_entries(sector);
    if entries.iter().any(|e| e.status != 0x00 && e.status != 0x80) {
        return Ok(None);
    }
    if entries.iter().all(MbrEntry::is_empty) && looks_like_fs_boot_sector(sector) {
        return Ok(None);
    }
    let mut partitions = Vec::new();
    let mut next_logical = 5;
    for (i, e) in entries.iter().enumerate() {
        if e.is_empty() {
            continue;
        }
        let Some(part) = mbr_partition(size, i as u32 + 1, 0, e) else {
            continue;
        };
        partitions.push(part);
        if e.is_extended() {
            read_logical(size, read_at, e.start, &mut next_logical, &mut partitions)?;
        }
    }
    Ok(Some(PartitionTable {
        kind: TableKind::Mbr,
        sector_size: MBR_SECTOR as u32,
        partitions,
    }))
}

fn mbr_partition(size: u64, number: u32, base: u64, e: &MbrEntry) -> Option<Partition> {
    let (start, length) = byte_range(size, MBR_SECTOR, base.checked_add(e.start)?, e.sectors)?;
    Some(Partition {
        number,
        start,
        length,
        type_id: format!("{:02x}", e.kind),
        name: String::new(),
    })
}

/// Follows the EBR chain of the extended partition at sector `ext_start`. In each EBR, data entries start relative to
/// that EBR and the first extended entry links to the next EBR relative to `ext_start` (as Linux reads them). Stops
/// at a missing signature, a revisited EBR, or `MAX_LOGICAL` EBRs or partitions.
fn read_logical(
    size: u64,
    read_at: &mut ReadAt,
    ext_start: u64,
    next_number: &mut u32,
    out: &mut Vec<Partition>,
) -> io::Result<()> {
    let (mut ebr, mut seen, mut found) = (ext_start, HashSet::new(), 0);
    while seen.len() < MAX_LOGICAL && seen.insert(ebr) {
        let Some(offset) = ebr.checked_mul(MBR_SECTOR) else {
            break;
        };
        let Some(sector) = read_block(size, read_at, offset, MBR_SECTOR)? else {
            break;
        };
        if !has_boot_signature(&sector) {
            break;
        }
        let entries = mbr_entries(&sector);
        for e in entries.iter().filter(|e| !e.is_empty() && !e.is_extended()) {
            if found >= MAX_LOGICAL {
                return Ok(());
            }
            if let Some(part) = mbr_partition(size, *next_number, ebr, e) {
                out.push(part);
                *next_number += 1;
                found += 1;
            }
        }
        let Some(link) = entries.iter().find(|e| !e.is_empty() && e.is_extended()) else {
            break;
        };
        let Some(next) = ext_start.checked_add(link.start) else {
            break;
        };
        ebr = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::FileExt;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    /// Path of a system tool, or `None` (with a message) so the test can skip instead of failing.
    fn tool(name: &str) -> Option<PathBuf> {
        let found = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.exists());
        if found.is_none() {
            eprintln!("SKIPPED: `{name}` not installed (Debian package fdisk / e2fsprogs)");
        }
        found
    }

    /// A sparse 64 MiB file partitioned by `sfdisk` from `script`.
    fn image(dir: &tempfile::TempDir, sfdisk: &Path, script: &str) -> PathBuf {
        let path = dir.path().join("disk.img");
        std::fs::File::create(&path).unwrap().set_len(64 << 20).unwrap();
        let mut child = Command::new(sfdisk)
            .arg("-q")
            .arg(&path)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "sfdisk failed");
        path
    }

    fn read_path(path: &Path) -> Option<PartitionTable> {
        let file = std::fs::File::open(path).unwrap();
        let size = file.metadata().unwrap().len();
        read_table(size, &mut |off, buf| file.read_exact_at(buf, off)).unwrap()
    }

    /// Asserts `table` matches what `sfdisk --json` reports for `path`.
    fn assert_matches_sfdisk(sfdisk: &Path, path: &Path, table: &PartitionTable) {
        let out = Command::new(sfdisk).arg("--json").arg(path).output().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let pt = &json["partitiontable"];
        assert_eq!(pt["sectorsize"].as_u64(), Some(u64::from(table.sector_size)));
        let expected = pt["partitions"].as_array().unwrap();
        assert_eq!(expected.len(), table.partitions.len(), "{table:?}");
        for (want, got) in expected.iter().zip(&table.partitions) {
            let node = want["node"].as_str().unwrap();
            assert_eq!(
                node.strip_prefix(path.to_str().unwrap()).unwrap(),
                got.number.to_string()
            );
            assert_eq!(want["start"].as_u64().unwrap() * 512, got.start);
            assert_eq!(want["size"].as_u64().unwrap() * 512, got.length);
            let ty = want["type"].as_str().unwrap().to_lowercase();
            match table.kind {
                TableKind::Gpt => assert_eq!(ty, got.type_id),
                TableKind::Mbr => assert_eq!(u8::from_str_radix(&ty, 16), u8::from_str_radix(&got.type_id, 16)),
            }
            assert_eq!(want["name"].as_str().unwrap_or(""), got.name);
        }
    }

    const GPT_SCRIPT: &str =
        "label: gpt\nsize=8M, type=L, name=\"root fs\"\nsize=4M, type=U, name=\"esp ü\"\ntype=S, name=\"swap\"\n";

    #[test]
    fn gpt_matches_sfdisk() {
        let Some(sfdisk) = tool("sfdisk") else { return };
        let dir = tempfile::tempdir().unwrap();
        let path = image(&dir, &sfdisk, GPT_SCRIPT);
        let table = read_path(&path).unwrap();
        assert_eq!(table.kind, TableKind::Gpt);
        assert_eq!(table.partitions[0].type_id, "0fc63daf-8483-4772-8e79-3d69d8477de4");
        assert_eq!(table.partitions[1].name, "esp ü");
        assert_matches_sfdisk(&sfdisk, &path, &table);
    }

    #[test]
    fn mbr_with_logical_partitions_matches_sfdisk() {
        let Some(sfdisk) = tool("sfdisk") else { return };
        let dir = tempfile::tempdir().unwrap();
        let script = "label: dos\nsize=8M, type=83\nsize=8M, type=82, bootable\ntype=5\nsize=4M, type=83\ntype=7\n";
        let path = image(&dir, &sfdisk, script);
        let table = read_path(&path).unwrap();
        assert_eq!(table.kind, TableKind::Mbr);
        let numbers: Vec<u32> = table.partitions.iter().map(|p| p.number).collect();
        assert_eq!(numbers, [1, 2, 3, 5, 6]);
        assert_eq!(table.partitions[2].type_id, "05");
        assert_matches_sfdisk(&sfdisk, &path, &table);
    }

    #[test]
    fn no_table_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let zeros = dir.path().join("zeros.img");
        std::fs::File::create(&zeros).unwrap().set_len(16 << 20).unwrap();
        assert_eq!(read_path(&zeros), None);
        let Some(mkfs) = tool("mkfs.ext4") else { return };
        let ext4 = dir.path().join("ext4.img");
        assert!(
            Command::new(mkfs)
                .args(["-q", "-F"])
                .arg(&ext4)
                .arg("16M")
                .status()
                .unwrap()
                .success()
        );
        assert_eq!(read_path(&ext4), None);
    }

    #[test]
    fn corrupt_primary_gpt_uses_backup() {
        let Some(sfdisk) = tool("sfdisk") else { return };
        let dir = tempfile::tempdir().unwrap();
        let path = image(&dir, &sfdisk, GPT_SCRIPT);
        let intact = read_path(&path).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"X", 512 + 60).unwrap(); // inside the disk GUID: header CRC now fails
        assert_eq!(read_path(&path), Some(intact));
        file.write_all_at(b"X", (64 << 20) - 512 + 60).unwrap();
        assert_eq!(read_path(&path), None, "protective MBR but no valid GPT copy");
    }

    /// Writes a valid GPT header at `lba` of a `sector`-byte-sector image whose entries start at `entries_lba`.
    fn plant_gpt(img: &mut [u8], sector: usize, lba: usize, entries_lba: usize, count: u32) {
        let len = count as usize * 128;
        let entries_crc = crc32(&img[entries_lba * sector..entries_lba * sector + len]);
        let h = &mut img[lba * sector..lba * sector + 92];
        h[..8].copy_from_slice(b"EFI PART");
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[16..20].fill(0);
        h[24..32].copy_from_slice(&(lba as u64).to_le_bytes());
        h[72..80].copy_from_slice(&(entries_lba as u64).to_le_bytes());
        h[80..84].copy_from_slice(&count.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32(h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
    }

    fn read_mem(img: &[u8], size: u64) -> io::Result<Option<PartitionTable>> {
        read_table(size, &mut |off, buf| {
            let src = usize::try_from(off)
                .ok()
                .and_then(|o| img.get(o..o.checked_add(buf.len())?));
            buf.copy_from_slice(src.ok_or(io::ErrorKind::UnexpectedEof)?);
            Ok(())
        })
    }

    #[test]
    fn gpt_with_4096_byte_sectors_and_clamping() {
        let mut img = vec![0u8; 64 * 4096];
        img[446 + 4] = PROTECTIVE;
        img[510..512].copy_from_slice(&[0x55, 0xaa]);
        let e = &mut img[2 * 4096..];
        e[..16].copy_from_slice(&[
            0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4,
        ]);
        e[32..40].copy_from_slice(&10u64.to_le_bytes());
        e[40..48].copy_from_slice(&1000u64.to_le_bytes()); // runs past the end: clamped
        e[128] = 1; // second entry: starts past the end, skipped
        e[128 + 32..128 + 40].copy_from_slice(&5000u64.to_le_bytes());
        e[128 + 40..128 + 48].copy_from_slice(&5001u64.to_le_bytes());
        plant_gpt(&mut img, 4096, 1, 2, 4);
        let table = read_mem(&img, img.len() as u64).unwrap().unwrap();
        assert_eq!(table.sector_size, 4096);
        let p = &table.partitions;
        assert_eq!((p.len(), p[0].start, p[0].length), (1, 10 * 4096, 54 * 4096));
        assert_eq!(p[0].type_id, "0fc63daf-8483-4772-8e79-3d69d8477de4");
    }

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    proptest! {
        /// Random bytes, optionally shaped to reach deep paths (0x55AA everywhere, small in-range MBR/EBR starts,
        /// a CRC-valid GPT header), with a declared size that may disagree with the data: no panic, only Ok or I/O Err.
        #[test]
        fn never_panics(mut img in proptest::collection::vec(any::<u8>(), 0..48 * 1024), shape in 0u8..4, slack in 0u64..8192) {
            let sectors = img.len() / 512;
            if shape > 0 && sectors >= 4 {
                for s in 0..sectors {
                    img[s * 512 + 510..s * 512 + 512].copy_from_slice(&[0x55, 0xaa]);
                    for i in 0..4 {
                        let e = s * 512 + 446 + 16 * i;
                        img[e] = 0;
                        let start = le32(&img, e + 8) % sectors as u32;
                        img[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
                        img[e + 4] = [0x05, 0x83, PROTECTIVE, img[e + 4]][usize::from(img[e + 4] % 4)];
                    }
                }
                if shape == 2 {
                    let count = (u32::from(img[600]) % 8).min((sectors as u32 - 2) * 4);
                    plant_gpt(&mut img, 512, 1, 2, count);
                }
            }
            let size = if shape == 3 { img.len() as u64 + slack } else { img.len() as u64 };
            let _ = read_mem(&img, size);
        }
    }
}
