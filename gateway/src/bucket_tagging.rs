//! Bucket tagging: PutBucketTagging / GetBucketTagging / DeleteBucketTagging. A bucket's tag
//! set lives in its record in the meta service and is replaced with one Raft entry. The rules
//! are those of object tags ([`tagging::validate_each`]) with up to 50 tags.

use cairn_proto::meta as pb;
use s3s::dto::{TagSet, Tagging};

use crate::error::{ApiError, ApiResult};
use crate::{tagging, Gateway};

/// Most tags a bucket may have.
pub(crate) const MAX_BUCKET_TAGS: usize = 50;

/// Checks a bucket tag set: at most 50 tags, each as an object tag.
pub(crate) fn validate(tags: &[pb::ObjectTag]) -> ApiResult<()> {
    if tags.len() > MAX_BUCKET_TAGS {
        return Err(ApiError::InvalidTag(format!(
            "Bucket tag count cannot be greater than {MAX_BUCKET_TAGS}"
        )));
    }
    tagging::validate_each(tags)
}

/// Replaces the bucket's tag set with the one in a PutBucketTagging body.
pub(crate) async fn put(gw: &Gateway, bucket: &str, body: Tagging) -> ApiResult<()> {
    let tags = tagging::unchecked(&body);
    validate(&tags)?;
    gw.meta.set_bucket_config(bucket, Some(tags), None).await?;
    Ok(())
}

/// The bucket's tag set; `NoSuchTagSet` when it has none.
pub(crate) async fn get(gw: &Gateway, bucket: &str) -> ApiResult<TagSet> {
    let record = gw.meta.get_bucket(bucket).await?;
    if record.tags.is_empty() {
        return Err(ApiError::NoSuchTagSet);
    }
    Ok(tagging::tag_set(&record.tags))
}

/// Removes the bucket's tag set (no error when it has none, as in S3).
pub(crate) async fn delete(gw: &Gateway, bucket: &str) -> ApiResult<()> {
    gw.meta
        .set_bucket_config(bucket, Some(Vec::new()), None)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(n: usize) -> Vec<pb::ObjectTag> {
        (0..n)
            .map(|i| pb::ObjectTag {
                key: format!("k{i}"),
                value: "v".into(),
            })
            .collect()
    }

    #[test]
    fn up_to_fifty_tags_with_the_object_tag_rules() {
        assert!(validate(&tags(50)).is_ok());
        assert!(matches!(validate(&tags(51)), Err(ApiError::InvalidTag(_))));
        let mut dup = tags(2);
        dup[1].key = "k0".into();
        assert!(matches!(validate(&dup), Err(ApiError::InvalidTag(_))));
        let mut reserved = tags(1);
        reserved[0].key = "aws:x".into();
        assert!(matches!(validate(&reserved), Err(ApiError::InvalidTag(_))));
    }
}
