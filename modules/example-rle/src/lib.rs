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

/// Runs `f` over the buffers of one ABI call and stores the length it
/// wrote, or returns its status.
///
/// # Safety
/// The pointers and lengths describe valid buffers (pagelog's ABI).
unsafe fn call(
    (params, pn): (*const u8, usize),
    (input, n): (*const u8, usize),
    (out, cap, len): (*mut u8, usize, *mut usize),
    f: impl FnOnce(&[u8], &[u8], &mut Out<'_>) -> Result<(), i32>,
) -> i32 {
    let (params, _) = unsafe { slices(params, pn, std::ptr::null_mut(), 0) };
    let (input, out) = unsafe { slices(input, n, out, cap) };
    let mut out = Out { buf: out, at: 0 };
    match f(params, input, &mut out) {
        Ok(()) => {
            unsafe { *len = out.at };
            OK
        }
        Err(status) => status,
    }
}

/// The caller's output buffer, filled from the front.
struct Out<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), i32> {
        let dst = self
            .buf
            .get_mut(self.at..self.at + bytes.len())
            .ok_or(OUT_TOO_SMALL)?;
        dst.copy_from_slice(bytes);
        self.at += bytes.len();
        Ok(())
    }

    fn fill(&mut self, byte: u8, n: usize) -> Result<(), i32> {
        let dst = self
            .buf
            .get_mut(self.at..self.at + n)
            .ok_or(OUT_TOO_SMALL)?;
        dst.fill(byte);
        self.at += n;
        Ok(())
    }
}

unsafe extern "C" fn parse(
    arg: *const u8,
    n: usize,
    params: *mut u8,
    cap: usize,
    len: *mut usize,
) -> i32 {
    let none = (std::ptr::null(), 0);
    unsafe {
        call(none, (arg, n), (params, cap, len), |_, arg, out| {
            let min = match arg {
                b"" => 3,
                a => std::str::from_utf8(a)
                    .ok()
                    .and_then(|s| s.parse::<u8>().ok())
                    .ok_or(BAD_ARGUMENT)?,
            };
            min_run(&[min]).ok_or(BAD_ARGUMENT)?;
            out.put(&[min])
        })
    }
}

/// The shortest run the parameters say is worth encoding.
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
    unsafe {
        call(
            (params, pn),
            (input, n),
            (out, cap, len),
            |params, input, out| encode(min_run(params).ok_or(BAD_ARGUMENT)?, input, out),
        )
    }
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
    unsafe {
        call(
            (params, pn),
            (input, n),
            (out, cap, len),
            |params, input, out| {
                min_run(params).ok_or(BAD_ARGUMENT)?;
                decode(input, out)
            },
        )
    }
}

/// Runs of `min` to 130 equal bytes as (0x80 | n - 3, byte); everything
/// else in literal blocks of up to 128 bytes, (n - 1, bytes).
fn encode(min: usize, input: &[u8], out: &mut Out<'_>) -> Result<(), i32> {
    let literals = |from: usize, to: usize, out: &mut Out<'_>| -> Result<(), i32> {
        for block in input[from..to].chunks(128) {
            out.put(&[(block.len() - 1) as u8])?;
            out.put(block)?;
        }
        Ok(())
    };
    let (mut i, mut lit_start) = (0, 0);
    while i < input.len() {
        let b = input[i];
        let run = input[i..].iter().take(130).take_while(|&&x| x == b).count();
        if run >= min {
            literals(lit_start, i, out)?;
            out.put(&[0x80 | (run - 3) as u8, b])?;
            i += run;
            lit_start = i;
        } else {
            i += 1;
        }
    }
    literals(lit_start, input.len(), out)
}

/// Undoes [`encode`]; input it cannot have made is `BAD_INPUT`.
fn decode(input: &[u8], out: &mut Out<'_>) -> Result<(), i32> {
    let mut r = 0;
    while let Some(&head) = input.get(r) {
        r += 1;
        if head & 0x80 != 0 {
            let &b = input.get(r).ok_or(BAD_INPUT)?;
            out.fill(b, usize::from(head & 0x7F) + 3)?;
            r += 1;
        } else {
            let k = usize::from(head) + 1;
            out.put(input.get(r..r + k).ok_or(BAD_INPUT)?)?;
            r += k;
        }
    }
    Ok(())
}
