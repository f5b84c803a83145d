//! A native constructor for a class whose `__init__` only stores its parameters.
//!
//! Events are built one per message by whoever feeds the engine, so building one is part of
//! what every event costs. A Python `__init__` that stores ten parameters runs a frame of
//! bytecode; the same stores done here cost much less. `install_member_init(cls)` gives such
//! a class this constructor as its `tp_init` (what calling the class runs), after checking
//! that it stores exactly what the class's own `__init__` would:
//! - `cls.__init__` is a plain function with no `*args`, `**kwargs` or keyword-only
//!   parameters, and each parameter after `self` names a member of the class (an attribute
//!   it declares storage for, read and written at a fixed offset in its objects);
//! - called on a probe object with a distinct marker per parameter, it leaves each marker in
//!   the member of its name, and the defaults there when only the required ones are given.
//!
//! The Python `__init__` stays in the class: `super().__init__`, `inspect.signature`,
//! subclasses (which get CPython's own `tp_init`) and every error use it. Whenever a call is
//! not the plain case (too many arguments, an unknown or repeated keyword, a missing one, an
//! instance of another type, or a class changed since), it is handed to that `__init__`,
//! so errors read exactly as Python's own.

use crate::python_members::MemberReader;
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFunction, PyString, PyTuple, PyType};
use std::os::raw::{c_int, c_uint};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// What the constructor needs of one class.
struct Layout {
    ty: *mut ffi::PyTypeObject,
    version: c_uint,
    /// Parameter names, interned, in order.
    names: Vec<Py<PyString>>,
    /// Where each parameter's member lives in an instance.
    offsets: Vec<isize>,
    /// The value of each parameter that has a default (`None` for the required ones).
    defaults: Vec<Option<Py<PyAny>>>,
    /// The class's own `__init__`, for everything but the plain case.
    python_init: Py<PyAny>,
}

// The layouts are read only with the GIL held (from `tp_init`), and never freed: a class
// given this constructor keeps it for the life of the process.
const CAPACITY: usize = 16;
const MAX_PARAMS: usize = 32;
static LAYOUTS: [AtomicPtr<Layout>; CAPACITY] = [const { AtomicPtr::new(ptr::null_mut()) }; CAPACITY];

fn layout_of(ty: *mut ffi::PyTypeObject) -> Option<&'static Layout> {
    for entry in &LAYOUTS {
        let p = entry.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: non-null entries point to leaked layouts that are never freed.
        let layout = unsafe { &*p };
        if layout.ty == ty {
            return Some(layout);
        }
    }
    None
}

/// Gives `cls` the native constructor (see the module docs), or says why it cannot.
#[pyfunction]
pub fn install_member_init(cls: &Bound<'_, PyType>) -> PyResult<()> {
    let py = cls.py();
    let refuse = |why: String| PyTypeError::new_err(format!("install_member_init({}): {why}", cls.name().map(|n| n.to_string()).unwrap_or_default()));
    let init = cls
        .getattr("__dict__")?
        .get_item("__init__")
        .map_err(|_| refuse("the class defines no __init__ of its own".into()))?;
    if !init.is_instance_of::<PyFunction>() {
        return Err(refuse("its __init__ is not a plain function".into()));
    }
    let code = init.getattr("__code__")?;
    let flags: u32 = code.getattr("co_flags")?.extract()?;
    const VARARGS: u32 = 0x04;
    const VARKEYWORDS: u32 = 0x08;
    if flags & (VARARGS | VARKEYWORDS) != 0
        || code.getattr("co_kwonlyargcount")?.extract::<usize>()? != 0
        || code.getattr("co_posonlyargcount")?.extract::<usize>()? != 0
    {
        return Err(refuse("its __init__ takes *args, **kwargs or keyword-only parameters".into()));
    }
    let argcount: usize = code.getattr("co_argcount")?.extract()?;
    let varnames: Vec<String> = code.getattr("co_varnames")?.extract()?;
    let params: Vec<String> = varnames[1..argcount].to_vec();
    if params.len() > MAX_PARAMS {
        return Err(refuse(format!("its __init__ has more than {MAX_PARAMS} parameters")));
    }
    let mut offsets = Vec::with_capacity(params.len());
    let mut names = Vec::with_capacity(params.len());
    for p in &params {
        let name = PyString::intern(py, p);
        offsets.push(MemberReader::member(cls, &name).map(|m| m.offset()).ok_or_else(|| refuse(format!("{p} is not an attribute the class declares (a member)")))?);
        names.push(name.unbind());
    }
    let given: Vec<Py<PyAny>> = match init.getattr("__defaults__")? {
        d if d.is_none() => vec![],
        d => d.extract()?,
    };
    let required = params.len() - given.len();
    let defaults: Vec<Option<Py<PyAny>>> = (0..params.len()).map(|i| (i >= required).then(|| given[i - required].clone_ref(py))).collect();

    // The probe: what the Python __init__ stores must be exactly its arguments.
    let object_new = py.import("builtins")?.getattr("object")?.getattr("__new__")?;
    let markers: Vec<Py<PyAny>> = (0..params.len()).map(|_| object_new.call1((py.import("builtins")?.getattr("object")?,)).map(Bound::unbind)).collect::<PyResult<_>>()?;
    for all in [true, false] {
        let probe = object_new.call1((cls,))?;
        let n = if all { params.len() } else { required };
        let args = PyTuple::new(py, std::iter::once(probe.clone()).chain(markers[..n].iter().map(|m| m.bind(py).clone())).collect::<Vec<_>>())?;
        init.call1(args).map_err(|e| refuse(format!("its __init__ failed on a probe: {e}")))?;
        for (i, p) in params.iter().enumerate() {
            let want = if i < n { markers[i].bind(py).clone() } else { defaults[i].as_ref().expect("a default").bind(py).clone() };
            let got = probe.getattr(p.as_str()).ok();
            if !got.is_some_and(|g| g.is(&want)) {
                return Err(refuse(format!("its __init__ does not store parameter {p} as given")));
            }
        }
    }

    let ty = cls.as_type_ptr();
    if layout_of(ty).is_some() {
        return Ok(());
    }
    // SAFETY: `ty` is a live type object.
    let raw = unsafe { &mut *ty };
    if raw.tp_flags & ffi::Py_TPFLAGS_VALID_VERSION_TAG == 0 || raw.tp_version_tag == 0 {
        return Err(refuse("its type version cannot be tracked".into()));
    }
    let layout = Box::into_raw(Box::new(Layout {
        ty,
        version: raw.tp_version_tag,
        names,
        offsets,
        defaults,
        python_init: init.unbind(),
    }));
    // The class must outlive its layout, which is never freed.
    std::mem::forget(cls.clone().unbind());
    for entry in &LAYOUTS {
        if entry.compare_exchange(ptr::null_mut(), layout, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            raw.tp_init = Some(member_init);
            return Ok(());
        }
    }
    // SAFETY: `layout` was not published.
    drop(unsafe { Box::from_raw(layout) });
    Err(refuse(format!("at most {CAPACITY} classes can have it")))
}

/// Whether `cls` has the native constructor (for tests and diagnostics).
#[pyfunction]
pub fn has_member_init(cls: &Bound<'_, PyType>) -> bool {
    layout_of(cls.as_type_ptr()).is_some()
}

/// The class's `tp_init`: stores the arguments in the members, or hands the call to the
/// Python `__init__` when it is anything but the plain case.
unsafe extern "C" fn member_init(obj: *mut ffi::PyObject, args: *mut ffi::PyObject, kwargs: *mut ffi::PyObject) -> c_int {
    // Nothing below should panic; if something does, Python gets an exception, not an abort.
    match std::panic::catch_unwind(|| init_members(obj, args, kwargs)) {
        Ok(status) => status,
        Err(_) => {
            ffi::PyErr_SetString(ffi::PyExc_SystemError, c"install_member_init: the native constructor failed".as_ptr());
            -1
        }
    }
}

unsafe fn init_members(obj: *mut ffi::PyObject, args: *mut ffi::PyObject, kwargs: *mut ffi::PyObject) -> c_int {
    let ty = ffi::Py_TYPE(obj);
    let mut base = ty;
    let layout = loop {
        if base.is_null() {
            ffi::PyErr_SetString(ffi::PyExc_SystemError, c"install_member_init: no layout for this type".as_ptr());
            return -1;
        }
        if let Some(l) = layout_of(base) {
            break l;
        }
        base = (*base).tp_base;
    };
    if ty == layout.ty && (*ty).tp_version_tag == layout.version && (*ty).tp_flags & ffi::Py_TPFLAGS_VALID_VERSION_TAG != 0 {
        if let Some(values) = plain_arguments(layout, args, kwargs) {
            for (i, v) in values.iter().enumerate().take(layout.offsets.len()) {
                let new = if v.is_null() {
                    layout.defaults[i].as_ref().map_or(ptr::null_mut(), |d| d.as_ptr())
                } else {
                    *v
                };
                ffi::Py_INCREF(new);
                let at = (obj as *mut u8).offset(layout.offsets[i]) as *mut *mut ffi::PyObject;
                let old = std::mem::replace(&mut *at, new);
                ffi::Py_XDECREF(old);
            }
            return 0;
        }
    }
    python_init(layout, obj, args, kwargs)
}

/// The arguments by parameter (null where the default applies), when every required one is
/// given once and nothing else is; None otherwise.
unsafe fn plain_arguments(layout: &Layout, args: *mut ffi::PyObject, kwargs: *mut ffi::PyObject) -> Option<[*mut ffi::PyObject; MAX_PARAMS]> {
    let n = layout.names.len();
    let given = ffi::PyTuple_GET_SIZE(args) as usize;
    if given > n {
        return None;
    }
    let mut values = [ptr::null_mut(); MAX_PARAMS];
    for (i, v) in values.iter_mut().enumerate().take(given) {
        *v = ffi::PyTuple_GET_ITEM(args, i as ffi::Py_ssize_t);
    }
    if !kwargs.is_null() {
        let (mut pos, mut key, mut value) = (0, ptr::null_mut(), ptr::null_mut());
        while ffi::PyDict_Next(kwargs, &mut pos, &mut key, &mut value) != 0 {
            // Keywords are interned by the compiler, and so are the names: the address
            // finds them, and anything else goes to the Python __init__.
            let i = layout.names.iter().position(|name| name.as_ptr() == key)?;
            if !values[i].is_null() {
                return None;
            }
            values[i] = value;
        }
    }
    let complete = (0..n).all(|i| !values[i].is_null() || layout.defaults[i].is_some());
    complete.then_some(values)
}

unsafe fn python_init(layout: &Layout, obj: *mut ffi::PyObject, args: *mut ffi::PyObject, kwargs: *mut ffi::PyObject) -> c_int {
    let py = Python::assume_attached();
    {
        let call = || -> PyResult<()> {
            let obj = Bound::from_borrowed_ptr(py, obj);
            let args = Bound::from_borrowed_ptr(py, args).cast_into::<PyTuple>()?;
            let full = PyTuple::new(py, std::iter::once(obj).chain(args.iter()).collect::<Vec<_>>())?;
            let kwargs = (!kwargs.is_null()).then(|| Bound::from_borrowed_ptr(py, kwargs).cast_into::<PyDict>()).transpose()?;
            layout.python_init.bind(py).call(full, kwargs.as_ref())?;
            Ok(())
        };
        match call() {
            Ok(()) => 0,
            Err(e) => {
                e.restore(py);
                -1
            }
        }
    }
}
