//! AddTagsToStream, RemoveTagsFromStream, ListTagsForStream.

use rheo_proto::v1 as pb;
use rheo_streams::{Result, Store};

pub(crate) async fn add_tags(
    store: &Store,
    request: pb::AddTagsToStreamRequest,
) -> Result<pb::AddTagsToStreamResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    store
        .add_tags(&name, request.tags.into_iter().collect())
        .await?;
    Ok(pb::AddTagsToStreamResponse {})
}

pub(crate) async fn remove_tags(
    store: &Store,
    request: pb::RemoveTagsFromStreamRequest,
) -> Result<pb::RemoveTagsFromStreamResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    store.remove_tags(&name, request.tag_keys).await?;
    Ok(pb::RemoveTagsFromStreamResponse {})
}

pub(crate) fn list_tags(
    store: &Store,
    request: pb::ListTagsForStreamRequest,
) -> Result<pb::ListTagsForStreamResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    let (tags, has_more_tags) = store.list_tags(
        &name,
        &request.exclusive_start_tag_key,
        request.limit.map(i64::from),
    )?;
    Ok(pb::ListTagsForStreamResponse {
        tags: tags
            .into_iter()
            .map(|(key, value)| pb::Tag { key, value })
            .collect(),
        has_more_tags,
    })
}
