//! Reading the attributes of event objects in place, without attribute lookups.
//!
//! A class that declares its attributes' storage keeps each of them at a fixed offset in
//! its objects, and the class holds a member descriptor per attribute that says where.
//! `getattr` finds that descriptor on every call (a type-cache probe, a descriptor call, a
//! new reference); here the offsets are looked up once and the object is read in place.
//! Reading them all first also lets the objects they point to be fetched from memory
//! together rather than one after another, which is most of what reading an event costs
//! when it is not in cache.
//!
//! This is sound only while the class is exactly what it was when the offsets were taken,
//! so the reader is used only for objects whose type is that class itself (not a subclass)
//! and while the type's version tag is unchanged: CPython gives a type a new tag whenever
//! one of its attributes is set or deleted. Anything else (another type, a changed class,
//! a name that is not a member holding an object reference, an unset member) makes the
//! caller use `getattr` as before.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyType};
use std::os::raw::c_uint;

pub struct MemberReader {
    /// The class, compared by address (the dispatcher keeps a reference to it).
    ty: usize,
    version: c_uint,
}

/// Where one attribute lives in objects of the reader's class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member(isize);

impl Member {
    /// The attribute's offset in an object of the class.
    pub fn offset(self) -> isize {
        self.0
    }
}

impl MemberReader {
    /// A reader for objects of exactly `ty`, or None when its version cannot be tracked.
    pub fn new(ty: &Bound<'_, PyType>) -> Option<MemberReader> {
        // SAFETY: `ty` is a live type object.
        let raw = unsafe { &*ty.as_type_ptr() };
        let valid = raw.tp_flags & ffi::Py_TPFLAGS_VALID_VERSION_TAG != 0;
        (valid && raw.tp_version_tag != 0).then(|| MemberReader { ty: ty.as_type_ptr() as usize, version: raw.tp_version_tag })
    }

    /// Where attribute `name` lives, if it is a member holding an object reference.
    pub fn member(ty: &Bound<'_, PyType>, name: &Bound<'_, PyString>) -> Option<Member> {
        let descr = ty.getattr(name).ok()?;
        // SAFETY: a member descriptor is a `PyMemberDescrObject` whose `d_member` points to
        // the class's `PyMemberDef` for this attribute (pyo3 declares that pointer with
        // another type; CPython's descrobject.h says `PyMemberDef *`).
        unsafe {
            if ffi::Py_TYPE(descr.as_ptr()) != std::ptr::addr_of_mut!(ffi::PyMemberDescr_Type) {
                return None;
            }
            let member = (*(descr.as_ptr() as *const ffi::PyMemberDescrObject)).d_member as *const ffi::PyMemberDef;
            let def = &*member;
            (def.type_code == ffi::Py_T_OBJECT_EX && def.flags & ffi::Py_READONLY == 0 && def.offset > 0).then_some(Member(def.offset))
        }
    }

    /// Whether `obj` may be read with this reader.
    #[inline]
    pub fn reads(&self, obj: &Bound<'_, PyAny>) -> bool {
        // SAFETY: `obj` is live, so is its type.
        let ty = unsafe { &*ffi::Py_TYPE(obj.as_ptr()) };
        std::ptr::from_ref(ty) as usize == self.ty
            && ty.tp_flags & ffi::Py_TPFLAGS_VALID_VERSION_TAG != 0
            && ty.tp_version_tag == self.version
    }

    /// The object in member `at` of `obj` (borrowed), or None when the member is unset.
    ///
    /// # Safety
    /// `self.reads(obj)` must be true and `at` must come from [`MemberReader::member`]
    /// on the same class.
    #[inline]
    pub unsafe fn get<'a, 'py>(obj: &'a Bound<'py, PyAny>, at: Member) -> Option<Borrowed<'a, 'py, PyAny>> {
        let p = *((obj.as_ptr() as *const u8).offset(at.0) as *const *mut ffi::PyObject);
        Borrowed::from_ptr_or_opt(obj.py(), p)
    }

    /// Asks the processor to start fetching the object a member points to.
    ///
    /// # Safety
    /// As for [`MemberReader::get`].
    #[inline]
    pub unsafe fn prefetch(obj: &Bound<'_, PyAny>, at: Member) {
        #[cfg(target_arch = "x86_64")]
        {
            let p = *((obj.as_ptr() as *const u8).offset(at.0) as *const *const i8);
            if !p.is_null() {
                std::arch::x86_64::_mm_prefetch(p, std::arch::x86_64::_MM_HINT_T0);
            }
        }
    }
}
