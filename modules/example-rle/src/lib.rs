//! An example pagelog transform, built apart from pagelog and loaded at
//! run time: run-length encoding (`rle`, id 200). It depends on nothing of
//! pagelog's: the C ABI below is the whole contract (pagelog's DESIGN.md,
//! "Transforms from outside").
//!
//! Encoding: runs of 3 to 130 equal bytes become `0x80 | (n - 3), byte`;
//! other bytes go in literal blocks of 1 to 128, `n - 1, bytes...`. The
//! parameter is the shortest run worth encoding (`rle:MIN`, 3 to 16,
//! default 3), recorded in one byte.

use std::os::raw::c_char;

/// Status codes of the ABI.
const OK: i32 = 0;
const OUT_TOO_SMALL: i32 = 1;
const BAD_INPUT: i32 = 2;
const BAD_ARGUMENT: i32 = 3;

type Parse = unsafe extern "C" fn(*const u8, usize, *mut u8, usize, *mut usize) -> i32;
type Code =
    unsafe extern "C" fn(*const u8, usize, *const u8, usize, *mut u8, usize, *mut usize) -> i32;

/// Version 1 of pagelog's transform ABI (the layout pagelog reads).
#[repr(C)]
pub struct PagelogTransformV1 {
    abi: u32,
    id: u16,
    name: *const c_char,
    parse: Parse,
    apply: Code,
    undo: Code,
}

// SAFETY: the table is immutable and its name a static string.
unsafe impl Sync for PagelogTransformV1 {}

static TABLE: PagelogTransformV1 = PagelogTransformV1 {
    abi: 1,
    id: 200,
    name: c"rle".as_ptr(),
    parse,
    apply,
    undo,
};

/// The one symbol pagelog looks for.
#[no_mangle]
pub extern "C" fn pagelog_transform_v1() -> *const PagelogTransformV1 {
    &TABLE
}

/// # Safety
/// The pointers and lengths describe valid buffers (pagelog's ABI).
unsafe fn slices<'a>(p: *const u8, n: usize, o: *mut u8, cap: usize) -> (&'a [u8], &'a mut [u8]) {
    let input = if n == 0 {
        &[][..]
    } else {
        unsafe { std::slice::from_raw_parts(p, n) }
    };
    let out = if cap == 0 {
        &mut [][..]
    } else {
        unsafe { std::slice::from_raw_parts_mut(o, cap) }
    };
    (input, out)
}

unsafe extern "C" fn parse(
    arg: *const u8,
    n: usize,
    params: *mut u8,
    cap: usize,
    len: *mut usize,
) -> i32 {
    let (arg, out) = unsafe { slices(arg, n, params, cap) };
    let min = match arg {
        b"" => 3,
        a => match std::str::from_utf8(a)
            .ok()
            .and_then(|s| s.parse::<u8>().ok())
        {
            Some(m) if (3..=16).contains(&m) => m,
            _ => return BAD_ARGUMENT,
        },
    };
    let Some(slot) = out.first_mut() else {
        return OUT_TOO_SMALL;
    };
    *slot = min;
    unsafe { *len = 1 };
    OK
}

fn min_run(params: &[u8]) -> Option<usize> {
    match params {
        [m] if (3..=16).contains(m) => Some(usize::from(*m)),
        _ => None,
    }
}

unsafe extern "C" fn apply(
    params: *const u8,
    pn: usize,
    input: *const u8,
    n: usize,
    out: *mut u8,
    cap: usize,
    len: *mut usize,
) -> i32 {
    let (params, _) = unsafe { slices(params, pn, std::ptr::null_mut(), 0) };
    let (input, out) = unsafe { slices(input, n, out, cap) };
    let Some(min) = min_run(params) else {
        return BAD_ARGUMENT;
    };
    let mut w = 0;
    let mut push = |b: u8| -> bool {
        match out.get_mut(w) {
            Some(slot) => {
                *slot = b;
                w += 1;
                true
            }
            None => false,
        }
    };
    let mut i = 0;
    let mut lit_start = 0;
    let flush_literals = |from: usize, to: usize, push: &mut dyn FnMut(u8) -> bool| -> bool {
        let mut at = from;
        while at < to {
            let k = (to - at).min(128);
            if !push((k - 1) as u8) {
                return false;
            }
            for &b in &input[at..at + k] {
                if !push(b) {
                    return false;
                }
            }
            at += k;
        }
        true
    };
    while i < input.len() {
        let b = input[i];
        let run = input[i..].iter().take(130).take_while(|&&x| x == b).count();
        if run >= min {
            if !flush_literals(lit_start, i, &mut push) || !push(0x80 | (run - 3) as u8) || !push(b)
            {
                return OUT_TOO_SMALL;
            }
            i += run;
            lit_start = i;
        } else {
            i += 1;
        }
    }
    if !flush_literals(lit_start, input.len(), &mut push) {
        return OUT_TOO_SMALL;
    }
    unsafe { *len = w };
    OK
}

unsafe extern "C" fn undo(
    params: *const u8,
    pn: usize,
    input: *const u8,
    n: usize,
    out: *mut u8,
    cap: usize,
    len: *mut usize,
) -> i32 {
    let (params, _) = unsafe { slices(params, pn, std::ptr::null_mut(), 0) };
    if min_run(params).is_none() {
        return BAD_ARGUMENT;
    }
    let (input, out) = unsafe { slices(input, n, out, cap) };
    let (mut r, mut w) = (0, 0);
    while r < input.len() {
        let head = input[r];
        r += 1;
        if head & 0x80 != 0 {
            let k = usize::from(head & 0x7F) + 3;
            let Some(&b) = input.get(r) else {
                return BAD_INPUT;
            };
            r += 1;
            let Some(dst) = out.get_mut(w..w + k) else {
                return OUT_TOO_SMALL;
            };
            dst.fill(b);
            w += k;
        } else {
            let k = usize::from(head) + 1;
            let Some(src) = input.get(r..r + k) else {
                return BAD_INPUT;
            };
            let Some(dst) = out.get_mut(w..w + k) else {
                return OUT_TOO_SMALL;
            };
            dst.copy_from_slice(src);
            r += k;
            w += k;
        }
    }
    unsafe { *len = w };
    OK
}
