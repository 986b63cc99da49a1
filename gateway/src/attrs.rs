//! What an object is stored with besides its bytes: Content-Type, user metadata, the
//! standard HTTP headers (Cache-Control, Content-Disposition, Content-Encoding,
//! Content-Language, Expires) and tags. Built from request fields, kept in the version
//! record, and turned back into GET/HEAD fields.

use std::collections::HashMap;

use cairn_proto::meta::{self as pb, ObjectVersion};
use s3s::dto::{Timestamp, TimestampFormat};

/// Everything a new version is stored with besides its data.
#[derive(Debug, Clone, Default)]
pub(crate) struct ObjectAttrs {
    /// Empty: none given (served as S3's default).
    pub content_type: String,
    pub user_metadata: HashMap<String, String>,
    pub headers: pb::ObjectHeaders,
    pub tags: Vec<pb::ObjectTag>,
    /// The Object Lock the write asked for (`x-amz-object-lock-*`); `None`: the bucket's
    /// default retention, if any.
    pub lock: Option<pb::ObjectLock>,
}

impl ObjectAttrs {
    /// The attributes of a stored version (what a copy with the COPY directive keeps). Its
    /// Object Lock is not among them: a copy is locked by its own request, as in S3.
    pub fn of(obj: &ObjectVersion) -> Self {
        Self {
            content_type: obj.content_type.clone(),
            user_metadata: obj.user_metadata.clone(),
            headers: obj.headers.clone().unwrap_or_default(),
            tags: obj.tags.clone(),
            lock: None,
        }
    }

    /// The headers as the version record stores them (`None` when none is set).
    pub fn stored_headers(&self) -> Option<pb::ObjectHeaders> {
        (self.headers != pb::ObjectHeaders::default()).then(|| self.headers.clone())
    }
}

/// The standard headers of a PutObject, CreateMultipartUpload or CopyObject request.
#[derive(Debug, Default)]
pub(crate) struct RequestHeaders {
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<Timestamp>,
}

impl RequestHeaders {
    /// The headers to store. `aws-chunked` is a transfer detail of the request, not an
    /// encoding of the object, and is dropped from Content-Encoding (as S3 does).
    pub fn into_stored(self) -> pb::ObjectHeaders {
        let content_encoding = self
            .content_encoding
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        pb::ObjectHeaders {
            cache_control: self.cache_control.unwrap_or_default(),
            content_disposition: self.content_disposition.unwrap_or_default(),
            content_encoding,
            content_language: self.content_language.unwrap_or_default(),
            expires: self.expires.and_then(|t| http_date(&t)).unwrap_or_default(),
        }
    }
}

/// The stored headers as GET and HEAD answer them.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ServedHeaders {
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<Timestamp>,
}

/// The headers to serve with `obj`.
pub(crate) fn served(obj: &ObjectVersion) -> ServedHeaders {
    let Some(h) = obj.headers.as_ref() else {
        return ServedHeaders::default();
    };
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    ServedHeaders {
        cache_control: some(&h.cache_control),
        content_disposition: some(&h.content_disposition),
        content_encoding: some(&h.content_encoding),
        content_language: some(&h.content_language),
        expires: (!h.expires.is_empty())
            .then(|| Timestamp::parse(TimestampFormat::HttpDate, &h.expires).ok())
            .flatten(),
    }
}

fn http_date(t: &Timestamp) -> Option<String> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_aws_chunked_is_dropped() {
        let expires =
            Timestamp::parse(TimestampFormat::HttpDate, "Wed, 21 Oct 2037 07:28:00 GMT").unwrap();
        let stored = RequestHeaders {
            cache_control: Some("max-age=60".into()),
            content_disposition: Some("attachment; filename=\"a.txt\"".into()),
            content_encoding: Some("gzip, aws-chunked".into()),
            content_language: Some("fr".into()),
            expires: Some(expires.clone()),
        }
        .into_stored();
        assert_eq!(stored.content_encoding, "gzip");
        assert_eq!(stored.expires, "Wed, 21 Oct 2037 07:28:00 GMT");
        let obj = ObjectVersion {
            headers: Some(stored),
            ..Default::default()
        };
        let out = served(&obj);
        assert_eq!(out.cache_control.as_deref(), Some("max-age=60"));
        assert_eq!(out.content_language.as_deref(), Some("fr"));
        assert_eq!(out.expires, Some(expires));

        let only_chunked = RequestHeaders {
            content_encoding: Some("aws-chunked".into()),
            ..Default::default()
        }
        .into_stored();
        assert_eq!(only_chunked, pb::ObjectHeaders::default());
        assert_eq!(served(&ObjectVersion::default()), ServedHeaders::default());
    }
}
