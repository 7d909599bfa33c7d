//! An in-memory file system for crash and fault tests.
//!
//! Every file keeps two images: what was written (`live`) and what a power cut would leave
//! (`durable`). `sync_data` makes a file's live bytes and length durable; `sync_dir` makes a
//! directory's entries (creations, renames, unlinks) durable. Writes not yet synced are kept as
//! pending operations so a crash image can apply none, all, or a random torn subset of them,
//! sector by sector, as a real disk might.
//!
//! Tests arm a crash at the n-th sync (every operation fails from then on, as if the process had
//! died there) or a fault (ENOSPC, EIO) at the n-th write or sync, then build the image a restart
//! would see with [`SimFs::crash_image`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::{FileIo, Fs, LockGuard, OpenMode};

/// Linux's ENOSPC.
pub const ENOSPC: i32 = 28;
/// Linux's EIO.
pub const EIO: i32 = 5;

const SECTOR: usize = 512;

/// Which operation a fault is armed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOn {
    /// The n-th `write_all_at` (counting from 0 after arming) fails. Half its bytes reach the
    /// file first, as a short write would leave them.
    Write,
    /// The n-th `sync_data` fails and makes nothing durable.
    SyncData,
}

/// What survives a crash of the unsynced state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Nothing that was not synced.
    DropUnsynced,
    /// Everything written, as if the kernel had written it all back.
    KeepAll,
    /// A random subset of unsynced sectors and directory changes, chosen by this seed.
    Torn(u64),
}

#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
}

#[derive(Debug, Clone, Default)]
struct Dir {
    live: BTreeMap<String, u64>,
    durable: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
struct Fault {
    on: FaultOn,
    remaining: u64,
    errno: i32,
}

#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    dirs: BTreeMap<PathBuf, Dir>,
    next_inode: u64,
    locks: HashSet<PathBuf>,
    faults: Vec<Fault>,
    crash_at_sync: Option<u64>,
    crashed: bool,
    syncs: u64,
    writes: u64,
}

/// The simulated file system. Clones share state.
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let parent = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent"))?;
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| io::Error::other("path has no file name"))?;
    Ok((parent.to_path_buf(), name.to_string()))
}

fn not_found() -> io::Error {
    io::ErrorKind::NotFound.into()
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the process is dead")
}

/// A small deterministic generator for torn crash images (xorshift64*).
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

fn apply(content: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write { offset, data } => {
            let start = *offset as usize;
            let end = start + data.len();
            if content.len() < end {
                content.resize(end, 0);
            }
            content[start..end].copy_from_slice(data);
        }
        Pending::SetLen(len) => content.resize(*len as usize, 0),
    }
}

impl SimFs {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the state from the others.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Makes the `n`-th sync from now (`sync_data` or `sync_dir`, counting from 0) the crash
    /// point: it and every later operation fail, and nothing more becomes durable.
    pub fn crash_at_sync(&self, n: u64) {
        let mut state = self.lock_state();
        state.crash_at_sync = Some(state.syncs + n);
    }

    /// Crashes now: every later operation fails.
    pub fn crash_now(&self) {
        self.lock_state().crashed = true;
    }

    /// True once the armed crash point was reached.
    pub fn has_crashed(&self) -> bool {
        self.lock_state().crashed
    }

    /// Arms a fault: the `nth` matching operation from now (counting from 0) fails with `errno`.
    pub fn inject(&self, on: FaultOn, nth: u64, errno: i32) {
        self.lock_state().faults.push(Fault {
            on,
            remaining: nth,
            errno,
        });
    }

    /// How many syncs (`sync_data` and `sync_dir`) have run.
    pub fn sync_count(&self) -> u64 {
        self.lock_state().syncs
    }

    /// How many writes have run.
    pub fn write_count(&self) -> u64 {
        self.lock_state().writes
    }

    /// The file system a restart after a crash would find.
    pub fn crash_image(&self, mode: CrashMode) -> SimFs {
        let state = self.lock_state();
        let mut rng = Rng(match mode {
            CrashMode::Torn(seed) => seed | 1,
            _ => 1,
        });
        let mut image = State {
            next_inode: state.next_inode,
            ..State::default()
        };
        for (path, dir) in &state.dirs {
            let entries = match mode {
                CrashMode::DropUnsynced => dir.durable.clone(),
                CrashMode::KeepAll => dir.live.clone(),
                CrashMode::Torn(_) => {
                    let mut entries = dir.durable.clone();
                    let names: HashSet<&String> =
                        dir.live.keys().chain(dir.durable.keys()).collect();
                    for name in names {
                        if dir.live.get(name) != dir.durable.get(name) && rng.coin() {
                            match dir.live.get(name) {
                                Some(inode) => entries.insert(name.clone(), *inode),
                                None => entries.remove(name),
                            };
                        }
                    }
                    entries
                }
            };
            image.dirs.insert(
                path.clone(),
                Dir {
                    live: entries.clone(),
                    durable: entries,
                },
            );
        }
        for (number, inode) in &state.inodes {
            let content = match mode {
                CrashMode::DropUnsynced => inode.durable.clone(),
                CrashMode::KeepAll => inode.live.clone(),
                CrashMode::Torn(_) => {
                    let mut content = inode.durable.clone();
                    for op in &inode.pending {
                        match op {
                            Pending::Write { offset, data } => {
                                for (index, sector) in data.chunks(SECTOR).enumerate() {
                                    if rng.coin() {
                                        let piece = Pending::Write {
                                            offset: offset + (index * SECTOR) as u64,
                                            data: sector.to_vec(),
                                        };
                                        apply(&mut content, &piece);
                                    }
                                }
                            }
                            Pending::SetLen(_) => {
                                if rng.coin() {
                                    apply(&mut content, op);
                                }
                            }
                        }
                    }
                    content
                }
            };
            image.inodes.insert(
                *number,
                Inode {
                    live: content.clone(),
                    durable: content,
                    pending: Vec::new(),
                },
            );
        }
        SimFs {
            state: Arc::new(Mutex::new(image)),
        }
    }

    /// Changes one byte of a file in place, live and durable, as disk rot would.
    pub fn corrupt_byte(&self, path: &Path, offset: u64) -> io::Result<()> {
        let mut state = self.lock_state();
        let inode = state.lookup(path)?;
        let file = state.inodes.get_mut(&inode).ok_or_else(not_found)?;
        let offset = offset as usize;
        for content in [&mut file.live, &mut file.durable] {
            let byte = content
                .get_mut(offset)
                .ok_or_else(|| io::Error::other("offset past end"))?;
            *byte ^= 0x5a;
        }
        Ok(())
    }

    /// A file's live content.
    pub fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.lock_state();
        let inode = state.lookup(path)?;
        Ok(state.inodes[&inode].live.clone())
    }
}

impl State {
    fn lookup(&self, path: &Path) -> io::Result<u64> {
        let (dir, name) = split(path)?;
        self.dirs
            .get(&dir)
            .and_then(|dir| dir.live.get(&name))
            .copied()
            .ok_or_else(not_found)
    }

    fn check_alive(&self) -> io::Result<()> {
        if self.crashed { Err(crashed()) } else { Ok(()) }
    }

    /// Counts an operation against the armed faults; returns the error to inject, if any.
    fn take_fault(&mut self, on: FaultOn) -> Option<io::Error> {
        let mut hit = None;
        for fault in self.faults.iter_mut().filter(|fault| fault.on == on) {
            if fault.remaining == 0 {
                hit = Some(fault.errno);
                fault.remaining = u64::MAX;
            } else if fault.remaining != u64::MAX {
                fault.remaining -= 1;
            }
        }
        hit.map(io::Error::from_raw_os_error)
    }

    fn count_sync(&mut self) -> io::Result<()> {
        self.check_alive()?;
        if self.crash_at_sync == Some(self.syncs) {
            self.crashed = true;
            return Err(crashed());
        }
        self.syncs += 1;
        Ok(())
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock_state();
        state.check_alive()?;
        // Directories are durable at once: the engine's crash cases concern files.
        for ancestor in path.ancestors() {
            state.dirs.entry(ancestor.to_path_buf()).or_default();
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.lock_state();
        state.check_alive()?;
        let dir = state.dirs.get(path).ok_or_else(not_found)?;
        let mut names: Vec<String> = dir.live.keys().cloned().collect();
        let prefix = path.to_path_buf();
        for sub in state.dirs.keys() {
            if sub.parent() == Some(prefix.as_path())
                && let Some(name) = sub.file_name().and_then(|name| name.to_str())
            {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileIo>> {
        let mut state = self.lock_state();
        state.check_alive()?;
        let (dir_path, name) = split(path)?;
        let existing = state
            .dirs
            .get(&dir_path)
            .ok_or_else(not_found)?
            .live
            .get(&name)
            .copied();
        let inode = match (mode, existing) {
            (OpenMode::Read | OpenMode::ReadWrite, Some(inode)) => inode,
            (OpenMode::Read | OpenMode::ReadWrite, None) => return Err(not_found()),
            (OpenMode::CreateNew, Some(_)) => return Err(io::ErrorKind::AlreadyExists.into()),
            (OpenMode::CreateTruncate, Some(inode)) => {
                let file = state.inodes.get_mut(&inode).ok_or_else(not_found)?;
                file.live.clear();
                file.pending.push(Pending::SetLen(0));
                inode
            }
            (OpenMode::CreateNew | OpenMode::CreateTruncate, None) => {
                let inode = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(inode, Inode::default());
                state
                    .dirs
                    .get_mut(&dir_path)
                    .ok_or_else(not_found)?
                    .live
                    .insert(name, inode);
                inode
            }
        };
        Ok(Box::new(SimFile {
            state: self.state.clone(),
            inode,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock_state();
        state.check_alive()?;
        let (dir, name) = split(path)?;
        let dir = state.dirs.get_mut(&dir).ok_or_else(not_found)?;
        dir.live.remove(&name).map(|_| ()).ok_or_else(not_found)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock_state();
        state.check_alive()?;
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        let inode = state
            .dirs
            .get_mut(&from_dir)
            .ok_or_else(not_found)?
            .live
            .remove(&from_name)
            .ok_or_else(not_found)?;
        state
            .dirs
            .get_mut(&to_dir)
            .ok_or_else(not_found)?
            .live
            .insert(to_name, inode);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock_state();
        state.count_sync()?;
        let dir = state.dirs.get_mut(path).ok_or_else(not_found)?;
        dir.durable = dir.live.clone();
        Ok(())
    }

    fn map_sealed(&self, path: &Path) -> io::Result<Bytes> {
        let state = self.lock_state();
        state.check_alive()?;
        let inode = state.lookup(path)?;
        Ok(Bytes::from(state.inodes[&inode].live.clone()))
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        let mut state = self.lock_state();
        state.check_alive()?;
        if !state.locks.insert(path.to_path_buf()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(Box::new(SimLock {
            state: self.state.clone(),
            path: path.to_path_buf(),
        }))
    }
}

#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    inode: u64,
}

impl SimFile {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl FileIo for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let state = self.lock_state();
        state.check_alive()?;
        let content = &state.inodes.get(&self.inode).ok_or_else(not_found)?.live;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start + buf.len();
        if end > content.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.copy_from_slice(&content[start..end]);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut state = self.lock_state();
        state.check_alive()?;
        state.writes += 1;
        let fault = state.take_fault(FaultOn::Write);
        let data = match &fault {
            Some(_) => buf[..buf.len() / 2].to_vec(),
            None => buf.to_vec(),
        };
        let file = state.inodes.get_mut(&self.inode).ok_or_else(not_found)?;
        let op = Pending::Write { offset, data };
        apply(&mut file.live, &op);
        file.pending.push(op);
        match fault {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.lock_state();
        state.count_sync()?;
        if let Some(error) = state.take_fault(FaultOn::SyncData) {
            return Err(error);
        }
        let file = state.inodes.get_mut(&self.inode).ok_or_else(not_found)?;
        file.durable = file.live.clone();
        file.pending.clear();
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.lock_state();
        state.check_alive()?;
        let file = state.inodes.get_mut(&self.inode).ok_or_else(not_found)?;
        let op = Pending::SetLen(len);
        apply(&mut file.live, &op);
        file.pending.push(op);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let state = self.lock_state();
        state.check_alive()?;
        Ok(state
            .inodes
            .get(&self.inode)
            .ok_or_else(not_found)?
            .live
            .len() as u64)
    }
}

#[derive(Debug)]
struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
}

impl LockGuard for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        state.locks.remove(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(fs: &SimFs, path: &str, data: &[u8]) -> Box<dyn FileIo> {
        let file = fs.open(Path::new(path), OpenMode::CreateNew).unwrap();
        file.write_all_at(data, 0).unwrap();
        file
    }

    #[test]
    fn only_synced_data_and_entries_survive_a_crash() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let synced = write(&fs, "/d/a", b"hello");
        synced.sync_data().unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        synced.write_all_at(b" world", 5).unwrap();
        let unlisted = write(&fs, "/d/b", b"x");
        unlisted.sync_data().unwrap();

        let image = fs.crash_image(CrashMode::DropUnsynced);
        assert_eq!(image.read_file(Path::new("/d/a")).unwrap(), b"hello");
        assert!(
            image.read_file(Path::new("/d/b")).is_err(),
            "entry was never made durable"
        );

        let all = fs.crash_image(CrashMode::KeepAll);
        assert_eq!(all.read_file(Path::new("/d/a")).unwrap(), b"hello world");
    }

    #[test]
    fn crash_point_stops_everything_after_it() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let file = write(&fs, "/d/a", b"one");
        fs.crash_at_sync(0);
        assert!(file.sync_data().is_err());
        assert!(fs.has_crashed());
        assert!(file.write_all_at(b"two", 3).is_err());
        assert!(
            fs.crash_image(CrashMode::DropUnsynced)
                .read_file(Path::new("/d/a"))
                .is_err()
        );
    }

    #[test]
    fn injected_faults_carry_the_os_error() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.inject(FaultOn::Write, 1, ENOSPC);
        let file = write(&fs, "/d/a", b"first");
        let error = file.write_all_at(b"second", 5).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(ENOSPC));
        assert_eq!(
            fs.read_file(Path::new("/d/a")).unwrap(),
            b"firstsec",
            "a short write"
        );
        file.write_all_at(b"!", 8).unwrap();

        fs.sync_dir(Path::new("/d")).unwrap();
        fs.inject(FaultOn::SyncData, 0, EIO);
        assert_eq!(file.sync_data().unwrap_err().raw_os_error(), Some(EIO));
        assert!(
            fs.crash_image(CrashMode::DropUnsynced)
                .read_file(Path::new("/d/a"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn locks_are_exclusive_until_dropped() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let guard = fs.lock(Path::new("/d/LOCK")).unwrap();
        assert_eq!(
            fs.lock(Path::new("/d/LOCK")).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        drop(guard);
        fs.lock(Path::new("/d/LOCK")).unwrap();
    }
}
