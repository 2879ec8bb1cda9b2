//! The filesystem boundary of the storage: the [`FileSystem`] and [`WritableFile`] traits (the
//! only file operations storage uses) and [`StdFs`], their implementation on `std::fs`.
//!
//! The simulated implementation, with a durability model and fault injection, is
//! [`SimFs`](super::SimFs). Storage holds an `Arc<dyn FileSystem>`, so a test or a future
//! deterministic cluster simulation swaps the disk without generics leaking into the server.
//!
//! Durability contract every implementation follows (POSIX semantics, as ext4/xfs give them):
//! data written to a file is durable only after [`WritableFile::sync`]; a file's *name*
//! (creation, rename, removal) is durable only after [`FileSystem::sync_dir`] on its directory.
//! A failed call may have done part of its work; the storage never retries it.

use std::{
    fmt,
    fs::{File, OpenOptions},
    io::{self, Seek, SeekFrom, Write},
    path::Path,
};

/// A file open for writing. Writes go to the end of the file.
pub trait WritableFile: Send + fmt::Debug {
    /// Appends `buf` at the end of the file (buffered by the OS: not durable).
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything written so far, and the file's length, durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts (or extends with zeros) the file to `len` bytes; later writes go after them.
    /// Not durable until [`WritableFile::sync`].
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// The file operations storage needs. Paths are absolute or relative to the process's cwd.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates `dir` and its missing parents (`mkdir -p`).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the regular files directly in `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole content of `path`; `ErrorKind::NotFound` if it does not exist.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// `path` opened for reading from its start, for a file too large to hold whole (a
    /// snapshot). By default the content read whole ([`FileSystem::read`]).
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn io::Read + Send>> {
        Ok(Box::new(io::Cursor::new(self.read(path)?)))
    }
    /// Creates `path`, or empties it if it exists, and opens it for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Opens the existing file `path` for appending at its end.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals in it) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real filesystem, through `std::fs`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

#[derive(Debug)]
struct StdFile(File);

impl WritableFile for StdFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)?;
        self.0.seek(SeekFrom::Start(len)).map(drop)
    }
}

impl FileSystem for StdFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                // A name that is not UTF-8 is none of ours: storage ignores unknown names.
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn io::Read + Send>> {
        Ok(Box::new(io::BufReader::with_capacity(
            256 * 1024,
            File::open(path)?,
        )))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdFile(file)))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.seek(SeekFrom::End(0))?;
        Ok(Box::new(StdFile(file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Writes `parts` to `<dir>/<name>.tmp` and fsyncs it; returns the temporary path. The file is
/// not visible under `name` until [`commit_temp`].
pub(crate) fn write_temp(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    parts: &[&[u8]],
) -> super::Result<std::path::PathBuf> {
    use super::error::io_err;
    let tmp = dir.join(format!("{name}{}", super::format::TMP_SUFFIX));
    let mut file = fs.create(&tmp).map_err(io_err("create", &tmp))?;
    for part in parts {
        file.write_all(part).map_err(io_err("write", &tmp))?;
    }
    file.sync().map_err(io_err("fsync", &tmp))?;
    Ok(tmp)
}

/// Renames the temporary file to `<dir>/<name>` and fsyncs the directory: the atomic, durable
/// replacement of `name`.
pub(crate) fn commit_temp(
    fs: &dyn FileSystem,
    dir: &Path,
    tmp: &Path,
    name: &str,
) -> super::Result<()> {
    use super::error::io_err;
    let path = dir.join(name);
    fs.rename(tmp, &path).map_err(io_err("rename", tmp))?;
    fs.sync_dir(dir).map_err(io_err("fsync directory", dir))
}

/// Write temp, fsync, rename, fsync directory.
pub(crate) fn replace_atomically(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    parts: &[&[u8]],
) -> super::Result<()> {
    let tmp = write_temp(fs, dir, name, parts)?;
    commit_temp(fs, dir, &tmp, name)
}
