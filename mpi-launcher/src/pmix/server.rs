//! A safe face on the PMIx server library: one server per process (the library allows no
//! more), namespaces registered per step, each rank's client and fork environment, and the
//! upcalls turned into [`Upcall`]s on the namespace's channel.
//!
//! Upcalls run on the library's progress thread; they only copy what they are given, send it
//! to the namespace's channel and return, so the library is never blocked. Their answers
//! ([`ModexReply`]) may be given from any thread, later.

use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::{Mutex, OnceLock};

use tokio::sync::mpsc;

use super::ffi;
use super::info::{namespace_info, StepMap, Value};

/// Why a PMIx call failed.
#[derive(Debug, thiserror::Error)]
pub enum PmixError {
    /// The library refused a call.
    #[error("PMIx {call} failed: {message} ({status})")]
    Call { call: &'static str, status: i32, message: String },
    /// A name or value held a NUL byte.
    #[error("PMIx {0} contains a NUL byte")]
    Nul(&'static str),
    /// The server's rendezvous directory could not be made.
    #[error("making the PMIx server directory {path}: {source}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a namespace's ranks asked of the host.
#[derive(Debug)]
pub enum Upcall {
    /// Every local rank entered a fence: `data` is this node's part of the exchange (empty
    /// when the ranks collect nothing); the reply is every node's parts concatenated.
    Fence { data: Vec<u8>, reply: ModexReply },
    /// A local rank wants a remote rank's data that no fence collected (direct modex): fetch
    /// it from the rank's node and answer with it.
    DirectModex { rank: u32, reply: ModexReply },
    /// A rank called `PMIx_Abort` (`MPI_Abort`).
    Abort { rank: u32, status: i32, message: String },
}

/// The answer the library waits for after a fence: give it once, from any thread. Dropped
/// unanswered, it fails the fence, so the ranks see an error rather than wait forever.
#[derive(Debug)]
pub struct ModexReply {
    cbfunc: ffi::modex_cbfunc_t,
    cbdata: usize,
}

impl ModexReply {
    /// Completes the operation with `data`, which the library reads until it releases it.
    pub fn ok(self, data: Vec<u8>) {
        self.finish(ffi::SUCCESS, data);
    }

    /// Fails the operation.
    pub fn fail(self) {
        self.finish(ffi::ERROR, Vec::new());
    }

    fn finish(mut self, status: ffi::Status, data: Vec<u8>) {
        let Some(cb) = self.cbfunc.take() else { return };
        let len = data.len();
        let held = Box::into_raw(Box::new(data));
        // SAFETY: the library gave this callback and cbdata for exactly one call; the data
        // stays alive in `held` until the library calls `release_bytes` with it.
        unsafe {
            let ptr = (*held).as_ptr().cast::<c_char>();
            cb(status, ptr, len, self.cbdata as *mut c_void, Some(release_bytes), held.cast());
        }
    }
}

impl Drop for ModexReply {
    fn drop(&mut self) {
        if self.cbfunc.is_some() {
            ModexReply { cbfunc: self.cbfunc.take(), cbdata: self.cbdata }.fail();
        }
    }
}

unsafe extern "C" fn release_bytes(cbdata: *mut c_void) {
    // SAFETY: `cbdata` is the box `ModexReply::finish` leaked, released once by the library.
    drop(unsafe { Box::from_raw(cbdata.cast::<Vec<u8>>()) });
}

/// Ranks that connected to the server and have not finalized.
pub type Unfinished = Arc<Mutex<HashSet<u32>>>;

/// Where a namespace's upcalls go.
#[derive(Clone)]
struct Route {
    tx: mpsc::UnboundedSender<Upcall>,
    unfinished: Unfinished,
}

/// The namespaces of this process.
fn routes() -> &'static Mutex<HashMap<String, Route>> {
    static ROUTES: OnceLock<Mutex<HashMap<String, Route>>> = OnceLock::new();
    ROUTES.get_or_init(Mutex::default)
}

fn lookup(proc_: *const ffi::pmix_proc_t) -> Option<(Route, u32)> {
    if proc_.is_null() {
        return None;
    }
    // SAFETY: the library passes a valid proc whose nspace is NUL-terminated.
    let (nspace, rank) =
        unsafe { (CStr::from_ptr((*proc_).nspace.as_ptr()).to_string_lossy().into_owned(), (*proc_).rank) };
    routes().lock().expect("lock").get(&nspace).cloned().map(|r| (r, rank))
}

fn route(proc_: *const ffi::pmix_proc_t) -> Option<(mpsc::UnboundedSender<Upcall>, u32)> {
    lookup(proc_).map(|(r, rank)| (r.tx, rank))
}

/// Notes whether a rank is inside MPI (connected and not finalized) and answers the library.
fn mark_unfinished(proc_: *const ffi::pmix_proc_t, inside: bool) -> ffi::Status {
    if let Some((r, rank)) = lookup(proc_) {
        let mut unfinished = r.unfinished.lock().expect("lock");
        if inside {
            unfinished.insert(rank);
        } else {
            unfinished.remove(&rank);
        }
    }
    ffi::OPERATION_SUCCEEDED
}

unsafe extern "C" fn on_connected(
    proc_: *const ffi::pmix_proc_t,
    _server_object: *mut c_void,
    _cbfunc: ffi::op_cbfunc_t,
    _cbdata: *mut c_void,
) -> ffi::Status {
    mark_unfinished(proc_, true)
}

unsafe extern "C" fn on_finalized(
    proc_: *const ffi::pmix_proc_t,
    _server_object: *mut c_void,
    _cbfunc: ffi::op_cbfunc_t,
    _cbdata: *mut c_void,
) -> ffi::Status {
    mark_unfinished(proc_, false)
}

unsafe extern "C" fn on_fence(
    procs: *const ffi::pmix_proc_t,
    nprocs: usize,
    _info: *const c_void,
    _ninfo: usize,
    data: *mut c_char,
    ndata: usize,
    cbfunc: ffi::modex_cbfunc_t,
    cbdata: *mut c_void,
) -> ffi::Status {
    // A fence is namespace-wide: every node of the step takes part (the participants' names
    // only say which namespace).
    let Some((tx, _)) = (nprocs > 0).then(|| route(procs)).flatten() else { return ffi::ERROR };
    let data = if data.is_null() || ndata == 0 {
        Vec::new()
    } else {
        // SAFETY: the library passes `ndata` readable bytes at `data` for this call.
        unsafe { std::slice::from_raw_parts(data.cast::<u8>(), ndata) }.to_vec()
    };
    let reply = ModexReply { cbfunc, cbdata: cbdata as usize };
    match tx.send(Upcall::Fence { data, reply }) {
        Ok(()) => ffi::SUCCESS,
        Err(e) => {
            // Nobody serves the namespace any more: the reply fails the fence as it drops.
            drop(e);
            ffi::SUCCESS
        }
    }
}

unsafe extern "C" fn on_abort(
    proc_: *const ffi::pmix_proc_t,
    _server_object: *mut c_void,
    status: c_int,
    msg: *const c_char,
    _procs: *mut ffi::pmix_proc_t,
    _nprocs: usize,
    cbfunc: ffi::op_cbfunc_t,
    cbdata: *mut c_void,
) -> ffi::Status {
    let message = if msg.is_null() {
        String::new()
    } else {
        // SAFETY: a non-NULL message is a NUL-terminated string owned by the library.
        unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned()
    };
    if let Some((r, rank)) = lookup(proc_) {
        // An aborting rank is accounted for: its end is the abort's, not a loss.
        r.unfinished.lock().expect("lock").remove(&rank);
        let _ = r.tx.send(Upcall::Abort { rank, status, message });
    }
    // The rank waits for this answer; the step's end (which the abort starts) kills it.
    if let Some(cb) = cbfunc {
        // SAFETY: the library's own callback and data for this call, called once.
        unsafe { cb(ffi::SUCCESS, cbdata) };
    }
    ffi::SUCCESS
}

unsafe extern "C" fn on_direct_modex(
    proc_: *const ffi::pmix_proc_t,
    _info: *const c_void,
    _ninfo: usize,
    cbfunc: ffi::modex_cbfunc_t,
    cbdata: *mut c_void,
) -> ffi::Status {
    let Some((tx, rank)) = route(proc_) else { return ffi::ERR_NOT_SUPPORTED };
    // Unanswered (nobody serves the namespace), the reply fails the request as it drops.
    let _ = tx.send(Upcall::DirectModex { rank, reply: ModexReply { cbfunc, cbdata: cbdata as usize } });
    ffi::SUCCESS
}

use crate::pmi::io::ModexAnswer;

unsafe extern "C" fn on_local_modex(status: ffi::Status, data: *mut c_char, sz: usize, cbdata: *mut c_void) {
    // SAFETY: `cbdata` is the box `Namespace::local_modex` leaked, given back once.
    let answer = unsafe { Box::from_raw(cbdata.cast::<ModexAnswer>()) };
    let bytes = (status == ffi::SUCCESS).then(|| {
        if data.is_null() || sz == 0 {
            Vec::new()
        } else {
            // SAFETY: the library passes `sz` readable bytes, freed after this returns.
            unsafe { std::slice::from_raw_parts(data.cast::<u8>(), sz) }.to_vec()
        }
    });
    let _ = answer.send(bytes);
}

fn check(call: &'static str, status: ffi::Status) -> Result<(), PmixError> {
    if status == ffi::SUCCESS || status == ffi::OPERATION_SUCCEEDED {
        return Ok(());
    }
    // SAFETY: PMIx_Error_string returns a static NUL-terminated string.
    let message = unsafe { CStr::from_ptr(ffi::PMIx_Error_string(status)) }.to_string_lossy().into_owned();
    Err(PmixError::Call { call, status, message })
}

fn cstring(what: &'static str, s: &str) -> Result<CString, PmixError> {
    CString::new(s).map_err(|_| PmixError::Nul(what))
}

/// A list of `pmix_info_t` made by the library, as one array.
struct InfoArray(ffi::pmix_data_array_t);

impl InfoArray {
    fn new(items: &[(&'static str, Value)]) -> Result<InfoArray, PmixError> {
        // SAFETY: the list is the library's, filled by `add` and released here; the converted
        // array is a deep copy owned by the returned value.
        unsafe {
            let list = ffi::PMIx_Info_list_start();
            let added = items.iter().try_for_each(|(k, v)| add(list, k, v));
            let mut array = ffi::pmix_data_array_t { type_: 0, size: 0, array: std::ptr::null_mut() };
            let converted =
                added.and_then(|()| check("Info_list_convert", ffi::PMIx_Info_list_convert(list, &mut array)));
            ffi::PMIx_Info_list_release(list);
            converted.map(|()| InfoArray(array))
        }
    }
}

impl Drop for InfoArray {
    fn drop(&mut self) {
        // SAFETY: the array was made by PMIx_Info_list_convert and is destructed once.
        unsafe { ffi::PMIx_Data_array_destruct(&mut self.0) };
    }
}

/// Adds one key to a library list (the library copies the value).
unsafe fn add(list: *mut c_void, key: &'static str, value: &Value) -> Result<(), PmixError> {
    let k = cstring("key", key)?;
    let status = match value {
        Value::Str(s) => {
            let s = cstring(key, s)?;
            // SAFETY: a string value is passed as the pointer to its bytes.
            unsafe { ffi::PMIx_Info_list_add(list, k.as_ptr(), s.as_ptr().cast(), ffi::STRING) }
        }
        // SAFETY (all below): the value pointer is to a local of the key's documented type.
        Value::U32(n) => unsafe { ffi::PMIx_Info_list_add(list, k.as_ptr(), (n as *const u32).cast(), ffi::UINT32) },
        Value::U16(n) => unsafe { ffi::PMIx_Info_list_add(list, k.as_ptr(), (n as *const u16).cast(), ffi::UINT16) },
        Value::Rank(n) => unsafe {
            ffi::PMIx_Info_list_add(list, k.as_ptr(), (n as *const u32).cast(), ffi::PROC_RANK)
        },
        Value::Bool(b) => unsafe { ffi::PMIx_Info_list_add(list, k.as_ptr(), (b as *const bool).cast(), ffi::BOOL) },
        Value::Infos(items) => {
            let inner = InfoArray::new(items)?;
            debug_assert_eq!(inner.0.type_, ffi::INFO);
            unsafe {
                ffi::PMIx_Info_list_add(
                    list,
                    k.as_ptr(),
                    (&inner.0 as *const ffi::pmix_data_array_t).cast(),
                    ffi::DATA_ARRAY,
                )
            }
        }
    };
    check("Info_list_add", status)
}

/// A string the library made with malloc, copied and freed.
fn take_string(ptr: *mut c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: the library returned a NUL-terminated malloc'd string that we now own.
    unsafe {
        let s = CStr::from_ptr(ptr).to_string_lossy().into_owned();
        libc::free(ptr.cast());
        s
    }
}

fn generated(
    call: &'static str,
    f: unsafe extern "C" fn(*const c_char, *mut *mut c_char) -> ffi::Status,
    input: &str,
) -> Result<String, PmixError> {
    let input = cstring(call, input)?;
    let mut out = std::ptr::null_mut();
    // SAFETY: the input is NUL-terminated; the output is a malloc'd string we take.
    check(call, unsafe { f(input.as_ptr(), &mut out) })?;
    Ok(take_string(out))
}

/// The library's locality string for CPUs (`None` where it cannot make one, e.g. without a
/// topology).
fn locality(cpus: &[u32]) -> Option<String> {
    let spec = CString::new(super::info::cpuset_string(cpus)).ok()?;
    let mut set = ffi::pmix_cpuset_t { source: std::ptr::null_mut(), bitmap: std::ptr::null_mut() };
    // SAFETY: the cpuset is filled by the library and destructed here; the string is taken.
    unsafe {
        if ffi::PMIx_Parse_cpuset_string(spec.as_ptr(), &mut set) != ffi::SUCCESS {
            return None;
        }
        let mut out = std::ptr::null_mut();
        let status = ffi::PMIx_server_generate_locality_string(&set, &mut out);
        ffi::PMIx_Cpuset_destruct(&mut set);
        (status == ffi::SUCCESS).then(|| take_string(out))
    }
}

fn proc_of(nspace: &str, rank: u32) -> Result<ffi::pmix_proc_t, PmixError> {
    if nspace.len() >= ffi::NSPACE_LEN || nspace.contains('\0') {
        return Err(PmixError::Nul("namespace (or it is over 255 bytes)"));
    }
    let mut p = ffi::pmix_proc_t { nspace: [0; ffi::NSPACE_LEN], rank };
    for (d, s) in p.nspace.iter_mut().zip(nspace.bytes()) {
        *d = s as c_char;
    }
    Ok(p)
}

/// This process's user and group ids.
pub fn own_ids() -> (u32, u32) {
    // SAFETY: getuid and getgid cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Removes a directory (and what is in it) when dropped.
#[derive(Debug)]
pub struct RemoveDir(pub PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// This process's PMIx server.
#[derive(Debug)]
pub struct Server {
    dir: PathBuf,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// Starts this process's server, its rendezvous files in `dir`, once; later calls return the
/// same server (whatever `dir` they name).
pub fn server(dir: &Path) -> Result<&'static Server, String> {
    SERVER.get_or_init(|| start(dir).map_err(|e| e.to_string())).as_ref().map_err(Clone::clone)
}

fn start(dir: &Path) -> Result<Server, PmixError> {
    // What an earlier server of this launcher left is stale: its clients are gone.
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|source| PmixError::Directory { path: dir.into(), source })?;
    let d = dir.to_string_lossy().into_owned();
    let info = InfoArray::new(&[("pmix.srvr.tmpdir", Value::Str(d.clone())), ("pmix.sys.tmpdir", Value::Str(d))])?;
    let module = Box::leak(Box::new(ffi::pmix_server_module_t {
        client_connected: Some(on_connected),
        client_finalized: Some(on_finalized),
        abort: Some(on_abort),
        fence_nb: Some(on_fence),
        direct_modex: Some(on_direct_modex),
        others: [std::ptr::null(); 23],
    }));
    // SAFETY: the module lives for the process; the info array outlives the call.
    check("server_init", unsafe { ffi::PMIx_server_init(module, info.0.array, info.0.size) })?;
    Ok(Server { dir: dir.to_path_buf() })
}

impl Server {
    /// The rendezvous directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Registers the step's namespace on this node; its upcalls arrive on the namespace's
    /// channel until it is dropped.
    pub fn register(&self, map: &StepMap) -> Result<Namespace, PmixError> {
        let node_map = generated("generate_regex", ffi::PMIx_generate_regex, &map.node_list())?;
        let proc_map = generated("generate_ppn", ffi::PMIx_generate_ppn, &map.ppn())?;
        let info = InfoArray::new(&namespace_info(map, node_map, proc_map, &locality))?;
        let name = cstring("namespace", &map.nspace)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let unfinished = Unfinished::default();
        routes().lock().expect("lock").insert(map.nspace.clone(), Route { tx, unfinished: unfinished.clone() });
        let ns = Namespace { name: map.nspace.clone(), upcalls: Some(rx), unfinished };
        let local = map.local_ranks().len() as c_int;
        // SAFETY: with no callback the call blocks until done; the array outlives it.
        check("server_register_nspace", unsafe {
            ffi::PMIx_server_register_nspace(
                name.as_ptr(),
                local,
                info.0.array,
                info.0.size,
                None,
                std::ptr::null_mut(),
            )
        })?;
        Ok(ns)
    }
}

/// A registered namespace: deregistered when dropped.
#[derive(Debug)]
pub struct Namespace {
    name: String,
    upcalls: Option<mpsc::UnboundedReceiver<Upcall>>,
    unfinished: Unfinished,
}

impl Namespace {
    /// Registers local rank `rank` (it must connect as `uid`/`gid`) and returns what its
    /// environment needs to find the server.
    pub fn client(&self, rank: u32, uid: u32, gid: u32) -> Result<Vec<(String, String)>, PmixError> {
        let p = proc_of(&self.name, rank)?;
        // SAFETY: with no callback the call blocks until done.
        check("server_register_client", unsafe {
            ffi::PMIx_server_register_client(&p, uid, gid, std::ptr::null_mut(), None, std::ptr::null_mut())
        })?;
        let mut env: *mut *mut c_char = std::ptr::null_mut();
        // SAFETY: the library grows a NULL-terminated malloc'd array of malloc'd strings,
        // which is read and freed here.
        unsafe {
            check("server_setup_fork", ffi::PMIx_server_setup_fork(&p, &mut env))?;
            let mut out = Vec::new();
            if !env.is_null() {
                let mut i = 0;
                while !(*env.add(i)).is_null() {
                    let kv = take_string(*env.add(i));
                    if let Some((k, v)) = kv.split_once('=') {
                        out.push((k.to_owned(), v.to_owned()));
                    }
                    i += 1;
                }
                libc::free(env.cast());
            }
            Ok(out)
        }
    }

    /// The ranks that connected and have not finalized: one that ends while still in it
    /// left its peers waiting, so the step must end.
    pub fn unfinished(&self) -> Unfinished {
        self.unfinished.clone()
    }

    /// Local rank `rank`'s data for another node's request (see [`local_modex`]).
    pub fn local_modex(&self, rank: u32) -> tokio::sync::oneshot::Receiver<Option<Vec<u8>>> {
        local_modex(&self.name, rank)
    }

    /// The channel of the namespace's upcalls (once).
    pub fn upcalls(&mut self) -> Option<mpsc::UnboundedReceiver<Upcall>> {
        self.upcalls.take()
    }
}

/// Rank `rank` of namespace `nspace` (local to this server): its data for another node's
/// request, once the rank has put it (`None` when the library cannot give it).
pub fn local_modex(nspace: &str, rank: u32) -> tokio::sync::oneshot::Receiver<Option<Vec<u8>>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let Ok(p) = proc_of(nspace, rank) else {
        let _ = tx.send(None);
        return rx;
    };
    let held = Box::into_raw(Box::new(tx));
    // SAFETY: the callback gets `held` back exactly once when the call succeeded; when it
    // did not, the box is taken back here.
    unsafe {
        if ffi::PMIx_server_dmodex_request(&p, Some(on_local_modex), held.cast()) != ffi::SUCCESS {
            let tx = Box::from_raw(held);
            let _ = tx.send(None);
        }
    }
    rx
}

impl Drop for Namespace {
    fn drop(&mut self) {
        routes().lock().expect("lock").remove(&self.name);
        if let Ok(name) = CString::new(self.name.as_str()) {
            // SAFETY: deregistering a namespace this process registered; no callback.
            unsafe { ffi::PMIx_server_deregister_nspace(name.as_ptr(), None, std::ptr::null_mut()) };
        }
    }
}
