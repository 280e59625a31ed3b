//! The response futures of the layer and of the guards.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Response, header};
use pin_project_lite::pin_project;

use super::body::AuthBody;
use crate::respond;

type Own = Response<respond::Body>;

/// What a boxed step ends in: the crate's own answer, or a call of the inner service
/// (made after an await, e.g. validating a bearer token).
pub(crate) enum Step<F> {
    Own(Own),
    Call(F, Vec<HeaderValue>),
}

type Boxed<F> = Pin<Box<dyn Future<Output = Step<F>> + Send>>;

pin_project! {
    /// Response future of [`HfAuth`](crate::HfAuth) and the guards.
    #[project = StateProj]
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum State<F> {
        // The inner service answers; `set_cookies` are appended (e.g. clearing a broken
        // session cookie).
        Inner { #[pin] fut: F, set_cookies: Vec<HeaderValue> },
        // The crate answered at once (a guard's denial, sign-out). Boxed, so that the
        // future is about as small as the inner one: guards nest these, and each level
        // moves the one inside.
        Ready { response: Option<Box<Own>> },
        // The crate talks to the provider first (sign-in, callback, a new bearer token),
        // then answers itself or calls the inner service.
        Boxed { fut: Boxed<F> },
    }
}

pin_project! {
    /// Response future of the guards ([`RequireLogin`](crate::RequireLogin) and the
    /// others, [`GrpcMethods`](crate::GrpcMethods)): the inner service's, or a denial.
    /// Smaller than [`ResponseFuture`] (guards never set cookies nor wait), which
    /// matters because guards nest, and each level moves the future inside it.
    pub struct GuardFuture<F> {
        #[pin]
        state: GuardState<F>,
    }
}

pin_project! {
    #[project = GuardProj]
    enum GuardState<F> {
        // The request passed: the inner service answers.
        Inner { #[pin] fut: F },
        // A denial, boxed so that the future is as small as the inner one.
        Denied { response: Option<Box<Own>> },
    }
}

impl<F> GuardFuture<F> {
    #[inline]
    pub(crate) fn inner(fut: F) -> Self {
        Self {
            state: GuardState::Inner { fut },
        }
    }

    pub(crate) fn denied(response: Own) -> Self {
        Self {
            state: GuardState::Denied {
                response: Some(Box::new(response)),
            },
        }
    }
}

impl<F> std::fmt::Debug for GuardFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<AuthBody<B>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            GuardProj::Inner { fut } => Poll::Ready(Ok(ready!(fut.poll(cx))?.map(AuthBody::inner))),
            GuardProj::Denied { response } => own(response),
        }
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(crate) fn inner(fut: F, set_cookies: Vec<HeaderValue>) -> Self {
        Self {
            state: State::Inner { fut, set_cookies },
        }
    }

    pub(crate) fn ready(response: Own) -> Self {
        Self {
            state: State::Ready {
                response: Some(Box::new(response)),
            },
        }
    }

    pub(crate) fn boxed(fut: impl Future<Output = Own> + Send + 'static) -> Self {
        Self::step(async move { Step::Own(fut.await) })
    }

    pub(crate) fn step(fut: impl Future<Output = Step<F>> + Send + 'static) -> Self {
        Self {
            state: State::Boxed { fut: Box::pin(fut) },
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<AuthBody<B>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        if let InnerProj::Boxed { fut } = state.as_mut().project() {
            match ready!(fut.as_mut().poll(cx)) {
                Step::Own(res) => return Poll::Ready(Ok(res.map(AuthBody::own))),
                Step::Call(fut, set_cookies) => state.set(State::Inner { fut, set_cookies }),
            }
        }
        match state.project() {
            InnerProj::Inner { fut, set_cookies } => {
                let mut res = ready!(fut.poll(cx))?;
                // Usually none (and never from a guard): skip even the drain then.
                if !set_cookies.is_empty() {
                    for cookie in set_cookies.drain(..) {
                        res.headers_mut().append(header::SET_COOKIE, cookie);
                    }
                }
                Poll::Ready(Ok(res.map(AuthBody::inner)))
            }
            InnerProj::Ready { response } => own(response),
            InnerProj::Boxed { .. } => unreachable!("a boxed step became Inner above"),
        }
    }
}

/// The crate's own answer, kept boxed until the future is polled.
fn own<B, E>(response: &mut Option<Box<Own>>) -> Poll<Result<Response<AuthBody<B>>, E>> {
    let res = response.take().expect("polled after completion");
    Poll::Ready(Ok(res.map(AuthBody::own)))
}
