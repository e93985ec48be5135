//! Rolling of access log files the way Caddy's writer (lumberjack) does it: the full file is
//! renamed to `<name>-<UTC time>.<ext>` (`2006-01-02T15-04-05.000`), gzipped unless
//! `roll_gzip` is off, and backups beyond `roll_keep` are removed, oldest first.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::access_log::FileSpec;
use crate::http1::date::civil_from_days;

/// UTC `[year, month, day, hour, minute, second]` of a time since the epoch.
pub fn civil(since: Duration) -> [u64; 6] {
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    [
        year as u64,
        u64::from(month),
        u64::from(day),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    ]
}

/// `2006-01-02T15-04-05.000` in UTC for `t`.
fn stamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let [y, mo, da, h, mi, s] = civil(d);
    format!(
        "{y:04}-{mo:02}-{da:02}T{h:02}-{mi:02}-{s:02}.{:03}",
        d.subsec_millis()
    )
}

/// (directory, stem + '-', extension) of a log path, as lumberjack splits it.
fn parts(path: &Path) -> (PathBuf, String, String) {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let (stem, ext) = match name.rfind('.') {
        Some(i) => (name[..i].to_owned(), name[i..].to_owned()),
        None => (name.clone(), String::new()),
    };
    (dir, format!("{stem}-"), ext)
}

/// Moves the current file aside and prunes old backups; the caller reopens `spec.path`.
pub fn roll(spec: &FileSpec) -> io::Result<()> {
    let (dir, prefix, ext) = parts(&spec.path);
    let backup = dir.join(format!("{prefix}{}{ext}", stamp(SystemTime::now())));
    fs::rename(&spec.path, &backup)?;
    if spec.roll_gzip {
        gzip(&backup)?;
    }
    let mut backups: Vec<PathBuf> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned());
            n.starts_with(&prefix) && (n.ends_with(&ext) || n.ends_with(&format!("{ext}.gz")))
        })
        .collect();
    // The timestamp sorts backups by age.
    backups.sort();
    let excess = backups.len().saturating_sub(spec.roll_keep.max(1));
    for old in &backups[..excess] {
        let _ = fs::remove_file(old);
    }
    Ok(())
}

fn gzip(path: &Path) -> io::Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(".gz");
    let mut input = fs::File::open(path)?;
    let out = fs::File::create(&name)?;
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    io::copy(&mut input, &mut enc)?;
    enc.finish()?;
    fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lumberjack_names() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_795_762_148_919);
        assert_eq!(stamp(t), "2026-11-27T06-49-08.919");
        let (dir, prefix, ext) = parts(Path::new("/var/log/caddy/access.log"));
        assert_eq!(
            (dir, prefix.as_str(), ext.as_str()),
            (PathBuf::from("/var/log/caddy"), "access-", ".log")
        );
    }

    #[test]
    fn rolls_and_prunes() {
        let dir = std::env::temp_dir().join(format!("zs-roll-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let spec = FileSpec {
            path: dir.join("a.log"),
            roll_size: Some(10),
            roll_keep: 2,
            roll_gzip: true,
        };
        for i in 0..4 {
            fs::write(&spec.path, format!("line {i}\n")).unwrap();
            roll(&spec).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names
            .iter()
            .all(|n| n.starts_with("a-") && n.ends_with(".log.gz")));
        fs::remove_dir_all(&dir).unwrap();
    }
}
