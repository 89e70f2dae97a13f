//! The declarations of OpenPMIx 4.2's server API that gangway calls (Debian's `libpmix-dev`,
//! `pmix_server.h`), written by hand: only these, with the layouts of the few structs passed
//! by value or filled in. `pmix_info_t` stays opaque — arrays of it are built with the
//! library's own `PMIx_Info_list_*` calls — so no union layout is repeated here.
//!
//! Every `unsafe` of the PMIx path is in this file and [`super::server`].

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

/// `pmix_status_t`.
pub type Status = c_int;
/// `PMIX_SUCCESS`.
pub const SUCCESS: Status = 0;
/// `PMIX_ERROR`.
pub const ERROR: Status = -1;
/// `PMIX_ERR_NOT_SUPPORTED`.
pub const ERR_NOT_SUPPORTED: Status = -47;
/// `PMIX_OPERATION_SUCCEEDED`: a call that was given no callback finished at once.
pub const OPERATION_SUCCEEDED: Status = -157;

/// `PMIX_RANK_WILDCARD`: every rank of a namespace.
pub const RANK_WILDCARD: u32 = u32::MAX - 1;

/// `pmix_data_type_t` values used with `PMIx_Info_list_add`.
pub const BOOL: u16 = 1;
pub const STRING: u16 = 3;
pub const UINT16: u16 = 13;
pub const UINT32: u16 = 14;
pub const INFO: u16 = 24;
pub const DATA_ARRAY: u16 = 39;
pub const PROC_RANK: u16 = 40;

/// `PMIX_MAX_NSLEN + 1`.
pub const NSPACE_LEN: usize = 256;

/// `pmix_proc_t`.
#[repr(C)]
pub struct pmix_proc_t {
    pub nspace: [c_char; NSPACE_LEN],
    pub rank: u32,
}

/// `pmix_data_array_t`.
#[repr(C)]
pub struct pmix_data_array_t {
    pub type_: u16,
    pub size: usize,
    pub array: *mut c_void,
}

/// `pmix_cpuset_t`.
#[repr(C)]
pub struct pmix_cpuset_t {
    pub source: *mut c_char,
    pub bitmap: *mut c_void,
}

/// `pmix_op_cbfunc_t`.
pub type op_cbfunc_t = Option<unsafe extern "C" fn(status: Status, cbdata: *mut c_void)>;
/// `pmix_release_cbfunc_t`.
pub type release_cbfunc_t = Option<unsafe extern "C" fn(cbdata: *mut c_void)>;
/// `pmix_modex_cbfunc_t`.
pub type modex_cbfunc_t = Option<
    unsafe extern "C" fn(
        status: Status,
        data: *const c_char,
        ndata: usize,
        cbdata: *mut c_void,
        release_fn: release_cbfunc_t,
        release_cbdata: *mut c_void,
    ),
>;

/// `pmix_dmodex_response_fn_t`.
pub type dmodex_response_fn_t =
    Option<unsafe extern "C" fn(status: Status, data: *mut c_char, sz: usize, cbdata: *mut c_void)>;
/// `pmix_server_client_connected_fn_t` and `pmix_server_client_finalized_fn_t`.
pub type client_fn_t = unsafe extern "C" fn(
    proc_: *const pmix_proc_t,
    server_object: *mut c_void,
    cbfunc: op_cbfunc_t,
    cbdata: *mut c_void,
) -> Status;
/// `pmix_server_abort_fn_t`.
pub type abort_fn_t = unsafe extern "C" fn(
    proc_: *const pmix_proc_t,
    server_object: *mut c_void,
    status: c_int,
    msg: *const c_char,
    procs: *mut pmix_proc_t,
    nprocs: usize,
    cbfunc: op_cbfunc_t,
    cbdata: *mut c_void,
) -> Status;
/// `pmix_server_fencenb_fn_t`.
pub type fencenb_fn_t = unsafe extern "C" fn(
    procs: *const pmix_proc_t,
    nprocs: usize,
    info: *const c_void,
    ninfo: usize,
    data: *mut c_char,
    ndata: usize,
    cbfunc: modex_cbfunc_t,
    cbdata: *mut c_void,
) -> Status;
/// `pmix_server_dmodex_req_fn_t`.
pub type dmodex_req_fn_t = unsafe extern "C" fn(
    proc_: *const pmix_proc_t,
    info: *const c_void,
    ninfo: usize,
    cbfunc: modex_cbfunc_t,
    cbdata: *mut c_void,
) -> Status;

/// `pmix_server_module_t` of OpenPMIx 4.2: 28 upcalls in this order; NULL is "not
/// supported". Only the first five are given; the 23 after `direct_modex` (publish …
/// client_connected2) stay NULL.
#[repr(C)]
pub struct pmix_server_module_t {
    pub client_connected: Option<client_fn_t>,
    pub client_finalized: Option<client_fn_t>,
    pub abort: Option<abort_fn_t>,
    pub fence_nb: Option<fencenb_fn_t>,
    pub direct_modex: Option<dmodex_req_fn_t>,
    pub others: [*const c_void; 23],
}

#[link(name = "pmix")]
extern "C" {
    pub fn PMIx_server_init(module: *mut pmix_server_module_t, info: *mut c_void, ninfo: usize) -> Status;
    pub fn PMIx_server_register_nspace(
        nspace: *const c_char,
        nlocalprocs: c_int,
        info: *mut c_void,
        ninfo: usize,
        cbfunc: op_cbfunc_t,
        cbdata: *mut c_void,
    ) -> Status;
    pub fn PMIx_server_deregister_nspace(nspace: *const c_char, cbfunc: op_cbfunc_t, cbdata: *mut c_void);
    pub fn PMIx_server_register_client(
        proc_: *const pmix_proc_t,
        uid: u32,
        gid: u32,
        server_object: *mut c_void,
        cbfunc: op_cbfunc_t,
        cbdata: *mut c_void,
    ) -> Status;
    pub fn PMIx_server_dmodex_request(
        proc_: *const pmix_proc_t,
        cbfunc: dmodex_response_fn_t,
        cbdata: *mut c_void,
    ) -> Status;
    pub fn PMIx_server_setup_fork(proc_: *const pmix_proc_t, env: *mut *mut *mut c_char) -> Status;
    pub fn PMIx_generate_regex(input: *const c_char, regex: *mut *mut c_char) -> Status;
    pub fn PMIx_generate_ppn(input: *const c_char, ppn: *mut *mut c_char) -> Status;
    pub fn PMIx_Parse_cpuset_string(cpuset_string: *const c_char, cpuset: *mut pmix_cpuset_t) -> Status;
    pub fn PMIx_server_generate_locality_string(cpuset: *const pmix_cpuset_t, locality: *mut *mut c_char) -> Status;
    pub fn PMIx_Cpuset_destruct(cpuset: *mut pmix_cpuset_t);
    pub fn PMIx_Error_string(status: Status) -> *const c_char;
    pub fn PMIx_Info_list_start() -> *mut c_void;
    pub fn PMIx_Info_list_add(list: *mut c_void, key: *const c_char, value: *const c_void, type_: u16) -> Status;
    pub fn PMIx_Info_list_convert(list: *mut c_void, array: *mut pmix_data_array_t) -> Status;
    pub fn PMIx_Info_list_release(list: *mut c_void);
    pub fn PMIx_Data_array_destruct(array: *mut pmix_data_array_t);
}
