//! libpff (the libyal project's reader of Outlook PST and OST files, Debian's `libpff1`),
//! loaded when a PST is first opened rather than linked: mailshift runs without it for every
//! other source, and says which package to install when a PST needs it.
//!
//! Only reading is bound. Every call returns 1 on success, 0 where a property is absent and
//! -1 on an error, which carries a message freed here. A [`File`] and its [`Item`]s are used
//! by one thread at a time (the caller holds them behind a mutex): libpff keeps caches in its
//! handles without locks of its own.

use std::ffi::{CString, c_char, c_int, c_void};
use std::marker::PhantomData;
use std::path::Path;
use std::sync::OnceLock;

type Handle = *mut c_void;
type Error = *mut c_void;

/// No entry-value flags: libpff 20180714 refuses `MATCH_ANY_VALUE_TYPE` on these calls; its
/// string getters convert an 8-bit string (ANSI PST, from the file's codepage) and a UTF-16
/// one alike.
const VALUE_FLAGS: u8 = 0;
const OPEN_READ: c_int = 0x01;

/// The functions used, resolved once from the library.
struct Api {
    // Kept loaded for as long as the process runs: the pointers below point into it.
    _lib: libloading::Library,
    error_sprint: unsafe extern "C" fn(Error, *mut c_char, usize) -> c_int,
    error_free: unsafe extern "C" fn(*mut Error),
    file_initialize: unsafe extern "C" fn(*mut Handle, *mut Error) -> c_int,
    file_free: unsafe extern "C" fn(*mut Handle, *mut Error) -> c_int,
    file_open: unsafe extern "C" fn(Handle, *const c_char, c_int, *mut Error) -> c_int,
    file_close: unsafe extern "C" fn(Handle, *mut Error) -> c_int,
    file_get_root_folder: unsafe extern "C" fn(Handle, *mut Handle, *mut Error) -> c_int,
    file_get_message_store: unsafe extern "C" fn(Handle, *mut Handle, *mut Error) -> c_int,
    file_get_item_by_identifier:
        unsafe extern "C" fn(Handle, u32, *mut Handle, *mut Error) -> c_int,
    item_free: unsafe extern "C" fn(*mut Handle, *mut Error) -> c_int,
    item_get_identifier: unsafe extern "C" fn(Handle, *mut u32, *mut Error) -> c_int,
    item_get_number_of_sets: unsafe extern "C" fn(Handle, *mut u32, *mut Error) -> c_int,
    item_get_entry_value_boolean:
        unsafe extern "C" fn(Handle, c_int, u32, *mut u8, u8, *mut Error) -> c_int,
    item_get_entry_value_32bit:
        unsafe extern "C" fn(Handle, c_int, u32, *mut u32, u8, *mut Error) -> c_int,
    item_get_entry_value_filetime:
        unsafe extern "C" fn(Handle, c_int, u32, *mut u64, u8, *mut Error) -> c_int,
    item_get_entry_value_utf8_string_size:
        unsafe extern "C" fn(Handle, c_int, u32, *mut usize, u8, *mut Error) -> c_int,
    item_get_entry_value_utf8_string:
        unsafe extern "C" fn(Handle, c_int, u32, *mut u8, usize, u8, *mut Error) -> c_int,
    item_get_entry_value_binary_data_size:
        unsafe extern "C" fn(Handle, c_int, u32, *mut usize, u8, *mut Error) -> c_int,
    item_get_entry_value_binary_data:
        unsafe extern "C" fn(Handle, c_int, u32, *mut u8, usize, u8, *mut Error) -> c_int,
    folder_get_utf8_name_size: unsafe extern "C" fn(Handle, *mut usize, *mut Error) -> c_int,
    folder_get_utf8_name: unsafe extern "C" fn(Handle, *mut u8, usize, *mut Error) -> c_int,
    folder_get_number_of_sub_folders: unsafe extern "C" fn(Handle, *mut c_int, *mut Error) -> c_int,
    folder_get_sub_folder: unsafe extern "C" fn(Handle, c_int, *mut Handle, *mut Error) -> c_int,
    folder_get_number_of_sub_messages:
        unsafe extern "C" fn(Handle, *mut c_int, *mut Error) -> c_int,
    folder_get_sub_message: unsafe extern "C" fn(Handle, c_int, *mut Handle, *mut Error) -> c_int,
    message_get_number_of_attachments:
        unsafe extern "C" fn(Handle, *mut c_int, *mut Error) -> c_int,
    message_get_attachment: unsafe extern "C" fn(Handle, c_int, *mut Handle, *mut Error) -> c_int,
    message_get_recipients: unsafe extern "C" fn(Handle, *mut Handle, *mut Error) -> c_int,
    message_get_plain_text_body_size: unsafe extern "C" fn(Handle, *mut usize, *mut Error) -> c_int,
    message_get_plain_text_body: unsafe extern "C" fn(Handle, *mut u8, usize, *mut Error) -> c_int,
    message_get_html_body_size: unsafe extern "C" fn(Handle, *mut usize, *mut Error) -> c_int,
    message_get_html_body: unsafe extern "C" fn(Handle, *mut u8, usize, *mut Error) -> c_int,
    message_get_rtf_body_size: unsafe extern "C" fn(Handle, *mut usize, *mut Error) -> c_int,
    message_get_rtf_body: unsafe extern "C" fn(Handle, *mut u8, usize, *mut Error) -> c_int,
    attachment_get_type: unsafe extern "C" fn(Handle, *mut c_int, *mut Error) -> c_int,
    attachment_get_data_size: unsafe extern "C" fn(Handle, *mut u64, *mut Error) -> c_int,
    attachment_data_read_buffer: unsafe extern "C" fn(Handle, *mut u8, usize, *mut Error) -> isize,
    attachment_get_item: unsafe extern "C" fn(Handle, *mut Handle, *mut Error) -> c_int,
}

/// What a failed call says.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PffError(String);

impl PffError {
    pub fn new(what: &str) -> PffError {
        PffError(what.to_owned())
    }
}

pub type Result<T> = std::result::Result<T, PffError>;

/// The library's file names, newest first (Debian, Fedora and a build from source).
const LIBRARY_NAMES: [&str; 2] = ["libpff.so.1", "libpff.so"];

fn api() -> Result<&'static Api> {
    static API: OnceLock<std::result::Result<Api, String>> = OnceLock::new();
    API.get_or_init(load)
        .as_ref()
        .map_err(|e| PffError(e.clone()))
}

fn load() -> std::result::Result<Api, String> {
    let mut last = String::new();
    for name in LIBRARY_NAMES {
        // SAFETY: libpff's initializers only set up its own state.
        match unsafe { libloading::Library::new(name) } {
            Ok(lib) => return resolve(lib).map_err(|e| format!("{name}: {e}")),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!(
        "reading a PST needs libpff (Debian and Ubuntu: apt install libpff1): {last}"
    ))
}

fn resolve(lib: libloading::Library) -> std::result::Result<Api, libloading::Error> {
    macro_rules! sym {
        ($name:literal) => {
            // SAFETY: the declared signature is libpff's (libpff.h, 20180714 and later).
            *unsafe { lib.get(concat!("libpff_", $name, "\0").as_bytes())? }
        };
    }
    Ok(Api {
        error_sprint: sym!("error_sprint"),
        error_free: sym!("error_free"),
        file_initialize: sym!("file_initialize"),
        file_free: sym!("file_free"),
        file_open: sym!("file_open"),
        file_close: sym!("file_close"),
        file_get_root_folder: sym!("file_get_root_folder"),
        file_get_message_store: sym!("file_get_message_store"),
        file_get_item_by_identifier: sym!("file_get_item_by_identifier"),
        item_free: sym!("item_free"),
        item_get_identifier: sym!("item_get_identifier"),
        item_get_number_of_sets: sym!("item_get_number_of_sets"),
        item_get_entry_value_boolean: sym!("item_get_entry_value_boolean"),
        item_get_entry_value_32bit: sym!("item_get_entry_value_32bit"),
        item_get_entry_value_filetime: sym!("item_get_entry_value_filetime"),
        item_get_entry_value_utf8_string_size: sym!("item_get_entry_value_utf8_string_size"),
        item_get_entry_value_utf8_string: sym!("item_get_entry_value_utf8_string"),
        item_get_entry_value_binary_data_size: sym!("item_get_entry_value_binary_data_size"),
        item_get_entry_value_binary_data: sym!("item_get_entry_value_binary_data"),
        folder_get_utf8_name_size: sym!("folder_get_utf8_name_size"),
        folder_get_utf8_name: sym!("folder_get_utf8_name"),
        folder_get_number_of_sub_folders: sym!("folder_get_number_of_sub_folders"),
        folder_get_sub_folder: sym!("folder_get_sub_folder"),
        folder_get_number_of_sub_messages: sym!("folder_get_number_of_sub_messages"),
        folder_get_sub_message: sym!("folder_get_sub_message"),
        message_get_number_of_attachments: sym!("message_get_number_of_attachments"),
        message_get_attachment: sym!("message_get_attachment"),
        message_get_recipients: sym!("message_get_recipients"),
        message_get_plain_text_body_size: sym!("message_get_plain_text_body_size"),
        message_get_plain_text_body: sym!("message_get_plain_text_body"),
        message_get_html_body_size: sym!("message_get_html_body_size"),
        message_get_html_body: sym!("message_get_html_body"),
        message_get_rtf_body_size: sym!("message_get_rtf_body_size"),
        message_get_rtf_body: sym!("message_get_rtf_body"),
        attachment_get_type: sym!("attachment_get_type"),
        attachment_get_data_size: sym!("attachment_get_data_size"),
        attachment_data_read_buffer: sym!("attachment_data_read_buffer"),
        attachment_get_item: sym!("attachment_get_item"),
        _lib: lib,
    })
}

/// Runs one call: `Ok(true)` on success, `Ok(false)` where the value is absent.
fn call(api: &Api, what: &str, f: impl FnOnce(*mut Error) -> c_int) -> Result<bool> {
    let mut err: Error = std::ptr::null_mut();
    let rc = f(&mut err);
    if rc >= 0 && err.is_null() {
        return Ok(rc == 1);
    }
    Err(PffError(format!("{what}: {}", take_error(api, err))))
}

fn take_error(api: &Api, mut err: Error) -> String {
    if err.is_null() {
        return "failed".into();
    }
    let mut buf = vec![0u8; 1024];
    // SAFETY: `err` came from libpff; the buffer's length is passed.
    unsafe {
        (api.error_sprint)(err, buf.as_mut_ptr().cast(), buf.len());
        (api.error_free)(&mut err);
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    // libpff prints a backtrace of nested calls, one per line: the first says enough.
    String::from_utf8_lossy(&buf[..end])
        .lines()
        .next()
        .unwrap_or("failed")
        .trim()
        .to_owned()
}

/// An open PST or OST file, read only.
pub struct File {
    api: &'static Api,
    handle: Handle,
}

// SAFETY: libpff's handles may move between threads; they are never used by two at once
// (see the module docs).
unsafe impl Send for File {}

impl File {
    pub fn open(path: &Path) -> Result<File> {
        let api = api()?;
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| PffError("a file name with a NUL byte".into()))?;
        let mut handle: Handle = std::ptr::null_mut();
        // SAFETY: out-pointers to locals; libpff allocates the handle.
        call(api, "initialize", |e| unsafe {
            (api.file_initialize)(&mut handle, e)
        })?;
        let file = File { api, handle };
        // SAFETY: a handle just initialized, a NUL-terminated path.
        call(api, "open", |e| unsafe {
            (api.file_open)(file.handle, c_path.as_ptr(), OPEN_READ, e)
        })?;
        Ok(file)
    }

    fn item(
        &self,
        what: &str,
        f: impl FnOnce(*mut Handle, *mut Error) -> c_int,
    ) -> Result<Option<Item<'_>>> {
        let mut handle: Handle = std::ptr::null_mut();
        let found = call(self.api, what, |e| f(&mut handle, e))?;
        Ok((found && !handle.is_null()).then(|| Item::new(self.api, handle)))
    }

    /// The folder every other hangs from (the IPM subtree is one of its children).
    pub fn root_folder(&self) -> Result<Option<Item<'_>>> {
        // SAFETY: an open file handle and an out-pointer.
        self.item("root folder", |h, e| unsafe {
            (self.api.file_get_root_folder)(self.handle, h, e)
        })
    }

    /// The message store: the entry identifiers of the default folders.
    pub fn message_store(&self) -> Result<Option<Item<'_>>> {
        // SAFETY: as above.
        self.item("message store", |h, e| unsafe {
            (self.api.file_get_message_store)(self.handle, h, e)
        })
    }

    /// The item with node identifier `id`, if there is one. libpff answers an error for an
    /// identifier it does not have, so an error here is "no such item", as much as for a
    /// damaged index: both are absent.
    pub fn item_by_id(&self, id: u32) -> Option<Item<'_>> {
        // SAFETY: as above.
        self.item("item", |h, e| unsafe {
            (self.api.file_get_item_by_identifier)(self.handle, id, h, e)
        })
        .unwrap_or(None)
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let api = self.api;
        // SAFETY: the handle is ours; closing a file that failed to open is harmless.
        unsafe {
            let mut e: Error = std::ptr::null_mut();
            (api.file_close)(self.handle, &mut e);
            if !e.is_null() {
                (api.error_free)(&mut e);
            }
            (api.file_free)(&mut self.handle, &mut e);
            if !e.is_null() {
                (api.error_free)(&mut e);
            }
        }
    }
}

/// A folder, message, attachment or recipient table of an open [`File`].
pub struct Item<'f> {
    api: &'static Api,
    handle: Handle,
    _file: PhantomData<&'f File>,
}

impl Drop for Item<'_> {
    fn drop(&mut self) {
        let mut e: Error = std::ptr::null_mut();
        // SAFETY: the handle is ours.
        unsafe {
            (self.api.item_free)(&mut self.handle, &mut e);
            if !e.is_null() {
                (self.api.error_free)(&mut e);
            }
        }
    }
}

impl<'f> Item<'f> {
    fn new(api: &'static Api, handle: Handle) -> Item<'f> {
        Item {
            api,
            handle,
            _file: PhantomData,
        }
    }

    fn child(
        &self,
        what: &str,
        f: impl FnOnce(*mut Handle, *mut Error) -> c_int,
    ) -> Result<Option<Item<'f>>> {
        let mut handle: Handle = std::ptr::null_mut();
        let found = call(self.api, what, |e| f(&mut handle, e))?;
        Ok((found && !handle.is_null()).then(|| Item::new(self.api, handle)))
    }

    fn count(&self, what: &str, f: impl FnOnce(*mut c_int, *mut Error) -> c_int) -> Result<usize> {
        let mut n: c_int = 0;
        call(self.api, what, |e| f(&mut n, e))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Bytes a size-then-fill pair of calls gives, `None` where absent.
    fn sized(
        &self,
        what: &str,
        size: impl FnOnce(*mut usize, *mut Error) -> c_int,
        fill: impl FnOnce(*mut u8, usize, *mut Error) -> c_int,
    ) -> Result<Option<Vec<u8>>> {
        let mut n = 0usize;
        if !call(self.api, what, |e| size(&mut n, e))? {
            return Ok(None);
        }
        let mut buf = vec![0u8; n];
        if n > 0 && !call(self.api, what, |e| fill(buf.as_mut_ptr(), n, e))? {
            return Ok(None);
        }
        Ok(Some(buf))
    }

    /// The node identifier: stable for as long as the file is the same file.
    pub fn id(&self) -> Result<u32> {
        let mut id = 0u32;
        // SAFETY: an item handle and an out-pointer.
        call(self.api, "identifier", |e| unsafe {
            (self.api.item_get_identifier)(self.handle, &mut id, e)
        })?;
        Ok(id)
    }

    /// How many record sets the item has (a recipient table: one a recipient).
    pub fn sets(&self) -> Result<usize> {
        let mut n = 0u32;
        // SAFETY: as above.
        call(self.api, "record sets", |e| unsafe {
            (self.api.item_get_number_of_sets)(self.handle, &mut n, e)
        })?;
        Ok(n as usize)
    }

    /// Property `tag` (its 16-bit identifier) of record set `set` as a 32-bit integer.
    pub fn u32_in(&self, set: usize, tag: u32) -> Result<Option<u32>> {
        let mut v = 0u32;
        // SAFETY: as above.
        let found = call(self.api, "property", |e| unsafe {
            (self.api.item_get_entry_value_32bit)(self.handle, set as c_int, tag, &mut v, 0, e)
        })?;
        Ok(found.then_some(v))
    }

    /// Property `tag` as a boolean.
    pub fn boolean(&self, tag: u32) -> Result<Option<bool>> {
        let mut v = 0u8;
        // SAFETY: as above.
        let found = call(self.api, "property", |e| unsafe {
            (self.api.item_get_entry_value_boolean)(self.handle, 0, tag, &mut v, 0, e)
        })?;
        Ok(found.then_some(v != 0))
    }

    pub fn u32(&self, tag: u32) -> Result<Option<u32>> {
        self.u32_in(0, tag)
    }

    /// Property `tag` as a FILETIME (100 ns since 1601).
    pub fn filetime(&self, tag: u32) -> Result<Option<u64>> {
        let mut v = 0u64;
        // SAFETY: as above.
        let found = call(self.api, "property", |e| unsafe {
            (self.api.item_get_entry_value_filetime)(self.handle, 0, tag, &mut v, 0, e)
        })?;
        Ok(found.then_some(v))
    }

    /// Property `tag` of record set `set` as text, whichever way the file stores it.
    pub fn string_in(&self, set: usize, tag: u32) -> Result<Option<String>> {
        let (api, h, s) = (self.api, self.handle, set as c_int);
        // SAFETY: the buffer is as long as the size libpff gave.
        let bytes = self.sized(
            "text property",
            |n, e| unsafe {
                (api.item_get_entry_value_utf8_string_size)(h, s, tag, n, VALUE_FLAGS, e)
            },
            |b, n, e| unsafe {
                (api.item_get_entry_value_utf8_string)(h, s, tag, b, n, VALUE_FLAGS, e)
            },
        )?;
        Ok(bytes.map(text))
    }

    pub fn string(&self, tag: u32) -> Result<Option<String>> {
        self.string_in(0, tag)
    }

    /// Property `tag` as bytes.
    pub fn binary(&self, tag: u32) -> Result<Option<Vec<u8>>> {
        let (api, h) = (self.api, self.handle);
        // SAFETY: as above.
        self.sized(
            "binary property",
            |n, e| unsafe {
                (api.item_get_entry_value_binary_data_size)(h, 0, tag, n, VALUE_FLAGS, e)
            },
            |b, n, e| unsafe {
                (api.item_get_entry_value_binary_data)(h, 0, tag, b, n, VALUE_FLAGS, e)
            },
        )
    }

    pub fn folder_name(&self) -> Result<Option<String>> {
        let (api, h) = (self.api, self.handle);
        // SAFETY: as above.
        let bytes = self.sized(
            "folder name",
            |n, e| unsafe { (api.folder_get_utf8_name_size)(h, n, e) },
            |b, n, e| unsafe { (api.folder_get_utf8_name)(h, b, n, e) },
        )?;
        Ok(bytes.map(text))
    }

    pub fn sub_folders(&self) -> Result<usize> {
        // SAFETY: as above.
        self.count("sub-folders", |n, e| unsafe {
            (self.api.folder_get_number_of_sub_folders)(self.handle, n, e)
        })
    }

    pub fn sub_folder(&self, i: usize) -> Result<Option<Item<'f>>> {
        // SAFETY: as above.
        self.child("sub-folder", |h, e| unsafe {
            (self.api.folder_get_sub_folder)(self.handle, i as c_int, h, e)
        })
    }

    pub fn messages(&self) -> Result<usize> {
        // SAFETY: as above.
        self.count("messages", |n, e| unsafe {
            (self.api.folder_get_number_of_sub_messages)(self.handle, n, e)
        })
    }

    pub fn message(&self, i: usize) -> Result<Option<Item<'f>>> {
        // SAFETY: as above.
        self.child("message", |h, e| unsafe {
            (self.api.folder_get_sub_message)(self.handle, i as c_int, h, e)
        })
    }

    pub fn attachments(&self) -> Result<usize> {
        // SAFETY: as above.
        self.count("attachments", |n, e| unsafe {
            (self.api.message_get_number_of_attachments)(self.handle, n, e)
        })
    }

    pub fn attachment(&self, i: usize) -> Result<Option<Item<'f>>> {
        // SAFETY: as above.
        self.child("attachment", |h, e| unsafe {
            (self.api.message_get_attachment)(self.handle, i as c_int, h, e)
        })
    }

    /// The recipient table: one record set a recipient.
    pub fn recipients(&self) -> Result<Option<Item<'f>>> {
        // SAFETY: as above.
        self.child("recipients", |h, e| unsafe {
            (self.api.message_get_recipients)(self.handle, h, e)
        })
    }

    /// The plain-text body, as UTF-8.
    pub fn plain_body(&self) -> Result<Option<Vec<u8>>> {
        let (api, h) = (self.api, self.handle);
        // SAFETY: as above.
        let b = self.sized(
            "plain-text body",
            |n, e| unsafe { (api.message_get_plain_text_body_size)(h, n, e) },
            |b, n, e| unsafe { (api.message_get_plain_text_body)(h, b, n, e) },
        )?;
        Ok(b.map(strip_nul))
    }

    /// The HTML body, in the message's internet codepage.
    pub fn html_body(&self) -> Result<Option<Vec<u8>>> {
        let (api, h) = (self.api, self.handle);
        // SAFETY: as above.
        let b = self.sized(
            "HTML body",
            |n, e| unsafe { (api.message_get_html_body_size)(h, n, e) },
            |b, n, e| unsafe { (api.message_get_html_body)(h, b, n, e) },
        )?;
        Ok(b.map(strip_nul))
    }

    /// The RTF body, decompressed.
    pub fn rtf_body(&self) -> Result<Option<Vec<u8>>> {
        let (api, h) = (self.api, self.handle);
        // SAFETY: as above.
        let b = self.sized(
            "RTF body",
            |n, e| unsafe { (api.message_get_rtf_body_size)(h, n, e) },
            |b, n, e| unsafe { (api.message_get_rtf_body)(h, b, n, e) },
        )?;
        Ok(b.map(strip_nul))
    }

    /// `b'd'` data, `b'i'` an attached item (a message), `b'r'` a reference to a file elsewhere.
    pub fn attachment_type(&self) -> Result<u8> {
        let mut t: c_int = 0;
        // SAFETY: as above.
        call(self.api, "attachment type", |e| unsafe {
            (self.api.attachment_get_type)(self.handle, &mut t, e)
        })?;
        Ok(u8::try_from(t).unwrap_or(0))
    }

    /// A data attachment's bytes.
    pub fn attachment_data(&self) -> Result<Vec<u8>> {
        let mut size = 0u64;
        // SAFETY: as above.
        if !call(self.api, "attachment size", |e| unsafe {
            (self.api.attachment_get_data_size)(self.handle, &mut size, e)
        })? {
            return Ok(Vec::new());
        }
        let size = usize::try_from(size).map_err(|_| PffError("attachment too large".into()))?;
        let mut out = vec![0u8; size];
        let mut at = 0;
        while at < size {
            let mut err: Error = std::ptr::null_mut();
            // SAFETY: the rest of the buffer, its length passed.
            let n = unsafe {
                (self.api.attachment_data_read_buffer)(
                    self.handle,
                    out[at..].as_mut_ptr(),
                    size - at,
                    &mut err,
                )
            };
            if n < 0 || !err.is_null() {
                return Err(PffError(format!(
                    "attachment data: {}",
                    take_error(self.api, err)
                )));
            }
            if n == 0 {
                out.truncate(at);
                break;
            }
            at += n as usize;
        }
        Ok(out)
    }

    /// An item attachment's message.
    pub fn attached_item(&self) -> Result<Option<Item<'f>>> {
        // SAFETY: as above.
        self.child("attached item", |h, e| unsafe {
            (self.api.attachment_get_item)(self.handle, h, e)
        })
    }
}

fn strip_nul(mut b: Vec<u8>) -> Vec<u8> {
    while b.last() == Some(&0) {
        b.pop();
    }
    b
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&strip_nul(b)).into_owned()
}
