//! The one hop back to JavaScript: a queue of jobs run on the JS thread,
//! and the Promises that polylock's runtime settles through it.
//!
//! Every promise-returning call creates its Promise on the JS thread
//! ([`promise`]), starts its work on polylock's runtime (that is the one hop
//! there) and settles the [`Deferred`] from the runtime thread that finishes
//! it: the settlement is a [`Job`] posted to this environment's one
//! thread-safe function, which runs it on the JS thread (the one hop back).
//! One thread-safe function serves every call (napi's `JsDeferred` makes one
//! per Promise: a libuv handle opened and closed each time).
//!
//! The thread-safe function keeps the event loop alive only while a Promise
//! is pending (as any pending I/O does); lost-listener notifications and
//! wait-started hooks ride the same queue without keeping it alive.
//!
//! The environment's JavaScript classes and functions the addon calls back
//! (`PolylockError`, `Lease`, the lost-event dispatcher) are registered once
//! by `index.js` through [`init`].

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::ptr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{Function, ToNapiValue, TypeName, ValidateNapiValue, ValueType};
use napi::{sys, Env, JsValue, Status};
use napi_derive::napi;

use crate::errors;
use crate::napi_raw::{call, check, construct, reference_value, string};

/// Work for the JS thread; gets the environment.
pub(crate) type Job = Box<dyn FnOnce(sys::napi_env) + Send + 'static>;

/// A raw JavaScript value made by the addon, returned as is.
pub struct Raw(pub(crate) sys::napi_value);

impl ToNapiValue for Raw {
    unsafe fn to_napi_value(_env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        Ok(val.0)
    }
}

impl TypeName for Raw {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ValidateNapiValue for Raw {}

/// The environment's thread-safe function, shared with polylock's threads.
/// `None` once the environment finalized it (posting then drops the job).
pub(crate) struct Queue {
    tsfn: Mutex<Option<Tsfn>>,
}

#[derive(Clone, Copy)]
struct Tsfn(sys::napi_threadsafe_function);

// SAFETY: a thread-safe function is made to be called from any thread; the
// mutex in `Queue` keeps calls from racing its finalization.
unsafe impl Send for Tsfn {}

impl Queue {
    /// Runs `job` on the JS thread, soon; dropped if the environment is
    /// gone.
    pub(crate) fn post(&self, job: Job) {
        let data = Box::into_raw(Box::new(job));
        let status = {
            let tsfn = self.tsfn.lock().unwrap_or_else(|p| p.into_inner());
            match *tsfn {
                // SAFETY: the function is live while it is in the mutex;
                // non-blocking on an unbounded queue never waits.
                Some(Tsfn(raw)) => unsafe {
                    sys::napi_call_threadsafe_function(
                        raw,
                        data.cast(),
                        sys::ThreadsafeFunctionCallMode::nonblocking,
                    )
                },
                None => sys::Status::napi_closing,
            }
        };
        if status != sys::Status::napi_ok {
            // Not queued: ours again (dropped outside the mutex, as the job
            // may post in its drop).
            drop(unsafe { Box::from_raw(data) });
        }
    }
}

/// This environment's state on its JS thread.
struct Context {
    env: sys::napi_env,
    tsfn: sys::napi_threadsafe_function,
    queue: Arc<Queue>,
    /// Promises not settled yet; the function is ref'd while there are.
    pending: Cell<usize>,
    /// The registered JavaScript values (the latest `init` call's).
    error_class: Cell<sys::napi_ref>,
    lease_class: Cell<sys::napi_ref>,
    dispatch_lost: Cell<sys::napi_ref>,
}

thread_local! {
    static CONTEXT: RefCell<Option<Rc<Context>>> = const { RefCell::new(None) };
}

fn context() -> Option<Rc<Context>> {
    CONTEXT.with(|c| c.borrow().clone())
}

/// Registers the JavaScript side with the addon (`index.js`, once per
/// environment; a module loaded again replaces the values): the error class
/// (`new PolylockError(code, message)`), the lease class
/// (`new Lease()`, which the addon wraps) and the lost-event dispatcher
/// (`dispatch(listenerId, event)`).
#[napi]
pub fn init(
    env: Env,
    error_class: Function<'_>,
    lease_class: Function<'_>,
    dispatch_lost: Function<'_>,
) -> napi::Result<()> {
    let raw = env.raw();
    let reference = |value: sys::napi_value| -> napi::Result<sys::napi_ref> {
        let mut out = ptr::null_mut();
        check(unsafe { sys::napi_create_reference(raw, value, 1, &mut out) })?;
        Ok(out)
    };
    let error_class = reference(error_class.raw())?;
    let lease_class = reference(lease_class.raw())?;
    let dispatch_lost = reference(dispatch_lost.raw())?;
    if let Some(context) = context() {
        for (cell, value) in [
            (&context.error_class, error_class),
            (&context.lease_class, lease_class),
            (&context.dispatch_lost, dispatch_lost),
        ] {
            unsafe { sys::napi_delete_reference(raw, cell.replace(value)) };
        }
        return Ok(());
    }
    let mut name = ptr::null_mut();
    check(unsafe { sys::napi_create_string_utf8(raw, c"polylock".as_ptr(), 8, &mut name) })?;
    let queue = Arc::new(Queue {
        tsfn: Mutex::new(None),
    });
    // The finalizer's handle on the queue, freed by the finalizer.
    let finalize_data = Arc::into_raw(queue.clone()) as *mut c_void;
    let mut tsfn = ptr::null_mut();
    let status = unsafe {
        sys::napi_create_threadsafe_function(
            raw,
            ptr::null_mut(),
            ptr::null_mut(),
            name,
            0,
            1,
            finalize_data,
            Some(finalize_queue),
            ptr::null_mut(),
            Some(run_job),
            &mut tsfn,
        )
    };
    if status != sys::Status::napi_ok {
        drop(unsafe { Arc::from_raw(finalize_data as *const Queue) });
        return check(status);
    }
    check(unsafe { sys::napi_unref_threadsafe_function(raw, tsfn) })?;
    *queue.tsfn.lock().unwrap_or_else(|p| p.into_inner()) = Some(Tsfn(tsfn));
    CONTEXT.with(|c| {
        *c.borrow_mut() = Some(Rc::new(Context {
            env: raw,
            tsfn,
            queue,
            pending: Cell::new(0),
            error_class: Cell::new(error_class),
            lease_class: Cell::new(lease_class),
            dispatch_lost: Cell::new(dispatch_lost),
        }))
    });
    Ok(())
}

/// The thread-safe function's finalizer (environment teardown): no more
/// posts, no more context.
unsafe extern "C" fn finalize_queue(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    let queue = unsafe { Arc::from_raw(data as *const Queue) };
    *queue.tsfn.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let _ = CONTEXT.try_with(|c| c.borrow_mut().take());
}

/// The thread-safe function's call: runs one job on the JS thread (or drops
/// it when the environment is going away: `env` is null then).
unsafe extern "C" fn run_job(
    env: sys::napi_env,
    _js_callback: sys::napi_value,
    _context: *mut c_void,
    data: *mut c_void,
) {
    let job = unsafe { Box::from_raw(data.cast::<Job>()) };
    if env.is_null() {
        return;
    }
    job(env);
}

/// The queue to post to from polylock's threads (lost listeners).
pub(crate) fn queue() -> napi::Result<Arc<Queue>> {
    Ok(require()?.queue.clone())
}

fn require() -> napi::Result<Rc<Context>> {
    context().ok_or_else(|| {
        napi::Error::new(
            Status::GenericFailure,
            "polylock's addon was not initialised (load it through index.js)",
        )
    })
}

/// A pending Promise, settled from any thread through the queue. Dropped
/// unsettled (a task that never finished), it rejects.
pub(crate) struct Deferred {
    raw: sys::napi_deferred,
    queue: Arc<Queue>,
    settled: bool,
}

// SAFETY: the raw deferred is only used by jobs, which run on the JS thread.
unsafe impl Send for Deferred {}

/// A new Promise and its deferred.
pub(crate) fn promise(env: &Env) -> napi::Result<(Deferred, Raw)> {
    let context = require()?;
    let mut raw = ptr::null_mut();
    let mut promise = ptr::null_mut();
    check(unsafe { sys::napi_create_promise(env.raw(), &mut raw, &mut promise) })?;
    let pending = context.pending.get();
    if pending == 0 {
        check(unsafe { sys::napi_ref_threadsafe_function(context.env, context.tsfn) })?;
    }
    context.pending.set(pending + 1);
    let deferred = Deferred {
        raw,
        queue: context.queue.clone(),
        settled: false,
    };
    Ok((deferred, Raw(promise)))
}

/// What a settlement makes on the JS thread: the value, or the rejection.
pub(crate) type Outcome = Result<sys::napi_value, sys::napi_value>;

impl Deferred {
    /// The queue this Promise settles through (for jobs that go with it).
    pub(crate) fn queue(&self) -> Arc<Queue> {
        self.queue.clone()
    }

    /// Settles the Promise with what `make` returns on the JS thread.
    pub(crate) fn settle(mut self, make: impl FnOnce(sys::napi_env) -> Outcome + Send + 'static) {
        self.settled = true;
        let raw = SendDeferred(self.raw);
        self.queue.post(Box::new(move |env| {
            let raw = raw;
            finish(env, raw.0, make(env))
        }));
    }

    /// Settles with `result`, converting a value with [`IntoJs`].
    pub(crate) fn settle_result<T: IntoJs + Send + 'static>(self, result: polylock::Result<T>) {
        self.settle(move |env| match result {
            Ok(value) => value.into_js(env).map_err(|e| errors::from_napi(env, e)),
            Err(error) => Err(errors::value(env, &error)),
        });
    }

    /// Rejects now, on the JS thread (a call refused before it started).
    pub(crate) fn reject_now(mut self, env: &Env, error: &polylock::Error) {
        self.settled = true;
        let value = errors::value(env.raw(), error);
        finish(env.raw(), self.raw, Err(value));
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if !self.settled {
            let raw = SendDeferred(self.raw);
            self.queue.post(Box::new(move |env| {
                let raw = raw;
                let error = polylock::Error::Backend(
                    "the operation ended without an outcome (a panic inside polylock)".into(),
                );
                finish(env, raw.0, Err(errors::value(env, &error)));
            }));
        }
    }
}

struct SendDeferred(sys::napi_deferred);
// SAFETY: moved to the JS thread inside a job, used there only.
unsafe impl Send for SendDeferred {}

/// Resolves or rejects on the JS thread; the Promise is no longer pending.
fn finish(env: sys::napi_env, raw: sys::napi_deferred, outcome: Outcome) {
    unsafe {
        match outcome {
            Ok(value) => sys::napi_resolve_deferred(env, raw, value),
            Err(error) => sys::napi_reject_deferred(env, raw, error),
        };
    }
    if let Some(context) = context() {
        let pending = context.pending.get().saturating_sub(1);
        context.pending.set(pending);
        if pending == 0 {
            unsafe { sys::napi_unref_threadsafe_function(context.env, context.tsfn) };
        }
    }
}

/// A value for JavaScript, made on the JS thread.
pub(crate) trait IntoJs {
    /// The JavaScript value.
    fn into_js(self, env: sys::napi_env) -> napi::Result<sys::napi_value>;
}

impl IntoJs for () {
    fn into_js(self, env: sys::napi_env) -> napi::Result<sys::napi_value> {
        unsafe { ToNapiValue::to_napi_value(env, ()) }
    }
}

impl<T: ToNapiValue> IntoJs for Option<T> {
    fn into_js(self, env: sys::napi_env) -> napi::Result<sys::napi_value> {
        unsafe { ToNapiValue::to_napi_value(env, self) }
    }
}

impl<T: ToNapiValue> IntoJs for Vec<T> {
    fn into_js(self, env: sys::napi_env) -> napi::Result<sys::napi_value> {
        unsafe { ToNapiValue::to_napi_value(env, self) }
    }
}

/// `new PolylockError(code, message)` with the registered class (JS thread).
pub(crate) fn new_error(env: sys::napi_env, code: &str, message: &str) -> Option<sys::napi_value> {
    let context = context()?;
    let class = reference_value(env, context.error_class.get())?;
    let args = [string(env, code)?, string(env, message)?];
    construct(env, class, &args)
}

/// `new Lease()` with the registered class (JS thread).
pub(crate) fn new_lease(env: sys::napi_env) -> napi::Result<sys::napi_value> {
    let context = require()?;
    reference_value(env, context.lease_class.get())
        .and_then(|class| construct(env, class, &[]))
        .ok_or_else(|| napi::Error::new(Status::GenericFailure, "cannot make a Lease"))
}

/// Calls the lost-event dispatcher with `(id, event)` (JS thread); an
/// exception in a listener becomes an uncaught exception.
pub(crate) fn dispatch_lost(env: sys::napi_env, id: u32, event: sys::napi_value) {
    let Some(context) = context() else { return };
    let Some(dispatch) = reference_value(env, context.dispatch_lost.get()) else {
        return;
    };
    let Ok(id) = (unsafe { ToNapiValue::to_napi_value(env, id) }) else {
        return;
    };
    call(env, dispatch, &[id, event]);
}
