//! The response body of the layer and the guards: the inner service's body, or one of
//! the crate's own answers.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a response that passed through [`HfAuthLayer`](crate::HfAuthLayer) or
    /// a guard: either the inner service's body or the crate's own page, JSON or
    /// gRPC status.
    #[project = AuthBodyProj]
    #[derive(Debug)]
    pub enum AuthBody<B> {
        /// The inner service's body, untouched.
        Inner {
            /// The body.
            #[pin] body: B,
        },
        /// An answer made by the crate.
        Own {
            /// The body.
            #[pin] body: Full<Bytes>,
        },
    }
}

impl<B> AuthBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        Self::Inner { body }
    }

    pub(crate) fn own(body: Full<Bytes>) -> Self {
        Self::Own { body }
    }
}

impl<B> Body for AuthBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            AuthBodyProj::Inner { body } => body.poll_frame(cx),
            AuthBodyProj::Own { body } => body
                .poll_frame(cx)
                .map(|f| f.map(|r| Ok(r.unwrap_or_else(|never| match never {})))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Inner { body } => body.is_end_stream(),
            Self::Own { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Inner { body } => body.size_hint(),
            Self::Own { body } => body.size_hint(),
        }
    }
}
