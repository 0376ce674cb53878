// Patched in for DataMiddleware (not part of glommio 0.9.0): see VENDORED.md.
//
// Multishot receive with a provided buffer ring. A stream that opts in
// (`TcpStream::use_multishot_recv`) keeps ONE `IORING_OP_RECV` with
// `IORING_RECV_MULTISHOT` armed in the main ring; the kernel receives into
// buffers of this executor's ring (`IORING_REGISTER_PBUF_RING`) and posts one
// completion per chunk. Each completion is copied out into the stream's own
// pending bytes and its buffer goes back to the ring at once, so a
// connection that does not read holds no ring buffer: it cannot starve the
// others. A stream whose pending bytes reach `PENDING_CAP` has its receive
// cancelled (the kernel then keeps the rest in the socket, and TCP flow
// control applies) and re-armed once the reader has taken them.
//
// The receive is re-armed by the next read when the kernel ends it (no
// `IORING_CQE_F_MORE`: `ENOBUFS` when the ring ran empty, a cancellation).
// A kernel without provided buffer rings (before 5.19) fails the
// registration, and one without multishot receive (before 6.0) fails the
// first receive with `EINVAL`: either way the stream goes back to the
// readiness poll and `recv` of upstream glommio, and so does every stream
// of the executor after it.

use std::{
    alloc::{self, Layout},
    cell::RefCell,
    io,
    os::unix::io::RawFd,
    ptr,
    rc::Rc,
    sync::atomic::{AtomicU16, Ordering},
    task::Waker,
};

use super::{ReactorQueue, UringDescriptor, UringOpDescriptor};
use crate::iou::sqe::SubmissionFlags;
use crate::uring_sys;

/// Set in the `user_data` of a multishot receive: the low bits are its slot.
pub(crate) const MULTISHOT_TAG: u64 = 1 << 63;
/// `sqe->ioprio` flag of a receive that stays armed.
pub(crate) const IORING_RECV_MULTISHOT: u16 = 1 << 1;
/// The buffer group of the executor's ring (one ring per io_uring).
pub(crate) const BUFFER_GROUP: u16 = 0xd11;

const IORING_REGISTER_PBUF_RING: libc::c_uint = 22;
const IORING_UNREGISTER_PBUF_RING: libc::c_uint = 23;
const IORING_CQE_F_BUFFER: u32 = 1 << 0;
const IORING_CQE_F_MORE: u32 = 1 << 1;
const IORING_CQE_BUFFER_SHIFT: u32 = 16;

/// Bytes one buffer of the ring holds (one completion at most).
pub const RING_BUFFER_SIZE: usize = 4096;
/// Pending bytes past which a stream's receive is stopped until it is read.
pub const PENDING_CAP: usize = 16 * 1024;
/// Capacity a drained stream keeps for the next message; more is freed.
const KEEP_CAPACITY: usize = 512;

#[repr(C)]
struct BufReg {
    ring_addr: u64,
    ring_entries: u32,
    bgid: u16,
    flags: u16,
    resv: [u64; 3],
}

#[repr(C)]
struct RingEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16, // the ring's tail, in the first entry
}

/// The executor's provided buffers: `entries` buffers of
/// [`RING_BUFFER_SIZE`] bytes, registered with the main ring.
struct BufRing {
    ring_fd: RawFd,
    ring: *mut RingEntry,
    ring_layout: Layout,
    data: *mut u8,
    data_layout: Layout,
    mask: u16,
    tail: u16,
}

impl BufRing {
    fn new(ring_fd: RawFd, entries: u16) -> io::Result<BufRing> {
        if entries == 0 || !entries.is_power_of_two() || entries > 32768 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let n = entries as usize;
        let ring_layout = Layout::from_size_align(n * std::mem::size_of::<RingEntry>(), 4096)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let data_layout = Layout::from_size_align(n * RING_BUFFER_SIZE, 4096)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: both layouts have a non-zero size.
        let ring = unsafe { alloc::alloc_zeroed(ring_layout) } as *mut RingEntry;
        if ring.is_null() {
            return Err(io::Error::from_raw_os_error(libc::ENOMEM));
        }
        let data = unsafe { alloc::alloc(data_layout) };
        if data.is_null() {
            unsafe { alloc::dealloc(ring as *mut u8, ring_layout) };
            return Err(io::Error::from_raw_os_error(libc::ENOMEM));
        }
        let mut reg = BufReg {
            ring_addr: ring as u64,
            ring_entries: entries as u32,
            bgid: BUFFER_GROUP,
            flags: 0,
            resv: [0; 3],
        };
        let ret = unsafe {
            uring_sys::syscalls::io_uring_register(
                ring_fd,
                IORING_REGISTER_PBUF_RING,
                &mut reg as *mut BufReg as *const libc::c_void,
                1,
            )
        };
        if ret < 0 {
            let err = io::Error::last_os_error();
            unsafe {
                alloc::dealloc(ring as *mut u8, ring_layout);
                alloc::dealloc(data, data_layout);
            }
            return Err(err);
        }
        let mut this = BufRing {
            ring_fd,
            ring,
            ring_layout,
            data,
            data_layout,
            mask: entries - 1,
            tail: 0,
        };
        for bid in 0..entries {
            this.recycle(bid);
        }
        Ok(this)
    }

    /// Gives buffer `bid` back to the kernel.
    fn recycle(&mut self, bid: u16) {
        let idx = (self.tail & self.mask) as usize;
        // SAFETY: idx < entries; the kernel reads entries only below the
        // tail published next, so this one is ours until then.
        unsafe {
            let entry = self.ring.add(idx);
            ptr::addr_of_mut!((*entry).addr)
                .write(self.data.add(bid as usize * RING_BUFFER_SIZE) as u64);
            ptr::addr_of_mut!((*entry).len).write(RING_BUFFER_SIZE as u32);
            ptr::addr_of_mut!((*entry).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail is the `resv` field of the first entry, a u16
        // the kernel reads with acquire ordering.
        unsafe {
            let tail = ptr::addr_of_mut!((*self.ring).resv) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// The first `len` bytes of buffer `bid`.
    fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let bid = (bid & self.mask) as usize;
        let len = len.min(RING_BUFFER_SIZE);
        // SAFETY: the buffer lies inside `data`; the kernel wrote it before
        // posting the completion that names it, and does not touch it until
        // it is recycled.
        unsafe { std::slice::from_raw_parts(self.data.add(bid * RING_BUFFER_SIZE), len) }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        let mut reg = BufReg {
            ring_addr: 0,
            ring_entries: 0,
            bgid: BUFFER_GROUP,
            flags: 0,
            resv: [0; 3],
        };
        unsafe {
            uring_sys::syscalls::io_uring_register(
                self.ring_fd,
                IORING_UNREGISTER_PBUF_RING,
                &mut reg as *mut BufReg as *const libc::c_void,
                1,
            );
            alloc::dealloc(self.ring as *mut u8, self.ring_layout);
            alloc::dealloc(self.data, self.data_layout);
        }
    }
}

/// What one stream's multishot receive has brought and where it stands.
#[derive(Debug, Default)]
pub(crate) struct Entry {
    pending: Vec<u8>,
    head: usize,
    /// A receive is in the kernel (or queued for it) until its final CQE.
    armed: bool,
    /// A cancellation was asked for the armed receive.
    stopping: bool,
    eof: bool,
    error: Option<i32>,
    received: bool,
    waker: Option<Waker>,
    /// The stream is gone: the slot is freed by the final CQE.
    orphan: bool,
}

/// What a read found.
pub(crate) enum Take {
    /// Bytes copied out.
    Bytes(usize),
    /// The peer closed its side.
    Eof,
    /// The receive failed.
    Error(io::Error),
    /// The kernel cannot do it: read the old way.
    Unsupported,
    /// Nothing yet; the waker will be woken.
    Wait,
}

/// One executor's multishot receives and their buffer ring.
pub(crate) struct MultishotState {
    ring_fd: RawFd,
    queue: ReactorQueue,
    enabled: bool,
    unsupported: bool,
    ring_entries: u16,
    ring: Option<BufRing>,
    slots: Vec<Option<Rc<RefCell<Entry>>>>,
    free: Vec<usize>,
}

impl MultishotState {
    pub(crate) fn new(ring_fd: RawFd, queue: ReactorQueue) -> MultishotState {
        MultishotState {
            ring_fd,
            queue,
            enabled: true,
            unsupported: false,
            ring_entries: 64,
            ring: None,
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Sets whether streams may use it and the ring's size; the ring is
    /// made at the first use, so this only counts before it.
    pub(crate) fn configure(&mut self, enabled: bool, ring_entries: u16) {
        self.enabled = enabled;
        if self.ring.is_none() {
            self.ring_entries = ring_entries;
        }
    }

    /// Frees the buffer ring (before the io_uring closes).
    pub(crate) fn shutdown(&mut self) {
        self.ring = None;
    }

    /// A slot for a stream, or `None` when disabled or not supported.
    pub(crate) fn register(&mut self) -> Option<(usize, Rc<RefCell<Entry>>)> {
        if !self.enabled || self.unsupported {
            return None;
        }
        if self.ring.is_none() {
            match BufRing::new(self.ring_fd, self.ring_entries) {
                Ok(ring) => self.ring = Some(ring),
                Err(_) => {
                    self.unsupported = true;
                    return None;
                }
            }
        }
        let entry = Rc::new(RefCell::new(Entry::default()));
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(entry.clone());
                slot
            }
            None => {
                self.slots.push(Some(entry.clone()));
                self.slots.len() - 1
            }
        };
        Some((slot, entry))
    }

    /// Arms the receive of `slot` on `fd`.
    fn arm(&self, fd: RawFd, slot: usize, entry: &mut Entry) {
        entry.armed = true;
        entry.stopping = false;
        self.queue.borrow_mut().submissions.push_back(UringDescriptor {
            fd,
            flags: SubmissionFlags::empty(),
            user_data: MULTISHOT_TAG | slot as u64,
            args: UringOpDescriptor::RecvMulti(BUFFER_GROUP),
        });
    }

    fn cancel(queue: &ReactorQueue, slot: usize) -> bool {
        match queue.try_borrow_mut() {
            Ok(mut q) => {
                q.cancellations.push_back(UringDescriptor {
                    args: UringOpDescriptor::Cancel(MULTISHOT_TAG | slot as u64),
                    fd: -1,
                    flags: SubmissionFlags::empty(),
                    user_data: 0,
                });
                true
            }
            Err(_) => false,
        }
    }

    /// The stream of `slot` is dropped: stop its receive; the slot is free
    /// once the kernel has let go of it.
    pub(crate) fn release(&mut self, slot: usize) {
        let Some(entry) = self.slots.get(slot).cloned().flatten() else {
            return;
        };
        let mut e = entry.borrow_mut();
        e.orphan = true;
        e.waker = None;
        e.pending = Vec::new();
        if e.armed && !e.stopping {
            // A receive still queued here never reached the kernel: a
            // cancellation (submitted first) would miss it and leave it
            // armed on a socket no one reads.
            let user_data = MULTISHOT_TAG | slot as u64;
            let mut q = self.queue.borrow_mut();
            if let Some(at) = q.submissions.iter().position(|d| d.user_data == user_data) {
                q.submissions.remove(at);
                e.armed = false;
            }
        }
        if e.armed {
            if !e.stopping {
                e.stopping = Self::cancel(&self.queue, slot);
            }
        } else {
            drop(e);
            self.slots[slot] = None;
            self.free.push(slot);
        }
    }

    /// Reads what the receive of `slot` brought into `buf`, arming it
    /// (again) when it is not in the kernel.
    pub(crate) fn take(&mut self, fd: RawFd, slot: usize, buf: &mut [u8], waker: &Waker) -> Take {
        let Some(entry) = self.slots.get(slot).cloned().flatten() else {
            return Take::Unsupported;
        };
        let mut e = entry.borrow_mut();
        let available = e.pending.len() - e.head;
        if available > 0 {
            let n = available.min(buf.len());
            buf[..n].copy_from_slice(&e.pending[e.head..e.head + n]);
            e.head += n;
            if e.head == e.pending.len() {
                e.head = 0;
                if e.pending.capacity() > KEEP_CAPACITY {
                    e.pending = Vec::new();
                } else {
                    e.pending.clear();
                }
            }
            if !e.armed && !e.eof && e.error.is_none() && e.pending.len() - e.head < PENDING_CAP {
                self.arm(fd, slot, &mut e);
            }
            return Take::Bytes(n);
        }
        if let Some(errno) = e.error.take() {
            if errno == libc::EINVAL && !e.received {
                self.unsupported = true;
                return Take::Unsupported;
            }
            return Take::Error(io::Error::from_raw_os_error(errno));
        }
        if e.eof {
            return Take::Eof;
        }
        if !e.armed {
            self.arm(fd, slot, &mut e);
        }
        match &e.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => e.waker = Some(waker.clone()),
        }
        Take::Wait
    }

    /// Handles one completion of a multishot receive; returns whether it
    /// woke a task and whether it was the receive's last.
    pub(crate) fn complete(&mut self, user_data: u64, res: i32, flags: u32) -> (bool, bool) {
        let slot = (user_data & !MULTISHOT_TAG) as usize;
        let more = flags & IORING_CQE_F_MORE != 0;
        let Some(entry) = self.slots.get(slot).cloned().flatten() else {
            // Cannot happen (a slot lives until its last CQE); give the
            // buffer back all the same.
            if flags & IORING_CQE_F_BUFFER != 0 {
                if let Some(ring) = self.ring.as_mut() {
                    ring.recycle((flags >> IORING_CQE_BUFFER_SHIFT) as u16);
                }
            }
            return (false, !more);
        };
        let mut e = entry.borrow_mut();
        if flags & IORING_CQE_F_BUFFER != 0 {
            let bid = (flags >> IORING_CQE_BUFFER_SHIFT) as u16;
            if let Some(ring) = self.ring.as_mut() {
                if res > 0 && !e.orphan {
                    if e.head > 0 && e.head == e.pending.len() {
                        e.head = 0;
                        e.pending.clear();
                    }
                    e.pending
                        .extend_from_slice(ring.bytes(bid, res as usize));
                    e.received = true;
                }
                ring.recycle(bid);
            }
        }
        if res == 0 {
            e.eof = true;
        } else if res < 0 {
            match -res {
                // The ring ran empty, or we stopped it: the next read re-arms.
                libc::ENOBUFS | libc::ECANCELED => {}
                errno => e.error = Some(errno),
            }
        }
        if !more {
            e.armed = false;
            e.stopping = false;
            if e.orphan {
                drop(e);
                self.slots[slot] = None;
                self.free.push(slot);
                return (false, true);
            }
        } else if !e.stopping && !e.orphan && e.pending.len() - e.head >= PENDING_CAP {
            e.stopping = Self::cancel(&self.queue, slot);
        }
        let woke = match e.waker.take() {
            Some(w) => {
                w.wake();
                true
            }
            None => false,
        };
        (woke, !more)
    }
}
