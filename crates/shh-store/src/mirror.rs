//! Dual writes for a migration window: [`MirrorStore`] reads from the primary and sends every
//! write (put, multipart, copy, delete) to the primary and then to the mirror.
//!
//! While a hub runs on the old cloud with the new one as mirror (or, after cut-over, on the new
//! cloud with the old one as mirror), both sides receive every new object, so a cut-over or a
//! rollback never has to wait for a catch-up copy. A write is acknowledged only when both sides
//! have it: a mirror failure fails the write, so the two sides never drift apart silently (the
//! hub's writes are create-only under fresh names, so retrying the whole write is safe).

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use std::fmt;
use std::sync::Arc;

/// Reads from `primary`; writes to `primary`, then to `mirror`.
#[derive(Debug, Clone)]
pub struct MirrorStore {
    primary: Arc<dyn ObjectStore>,
    mirror: Arc<dyn ObjectStore>,
}

impl MirrorStore {
    /// Wraps the two stores.
    pub fn new(primary: Arc<dyn ObjectStore>, mirror: Arc<dyn ObjectStore>) -> Self {
        Self { primary, mirror }
    }
}

impl fmt::Display for MirrorStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MirrorStore({} → {})", self.primary, self.mirror)
    }
}

/// A create-only write that meets an existing object on the mirror is fine only if that object
/// is byte for byte what is being written (an earlier sync copied it there). Anything else
/// means the two sides have forked, and the write fails.
async fn mirror_ok(
    mirror: &dyn ObjectStore,
    location: &Path,
    payload: &PutPayload,
    r: object_store::Result<PutResult>,
    mode: &PutMode,
) -> object_store::Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(object_store::Error::AlreadyExists { path, source })
            if matches!(mode, PutMode::Create) =>
        {
            let there = mirror.get(location).await?.bytes().await?;
            let same = there.len() == payload.content_length()
                && payload
                    .iter()
                    .scan(0usize, |off, chunk| {
                        let start = *off;
                        *off += chunk.len();
                        Some(there.get(start..*off) == Some(chunk.as_ref()))
                    })
                    .all(|b| b);
            if same {
                Ok(())
            } else {
                Err(object_store::Error::AlreadyExists {
                    path: format!("{path} (mirror holds different bytes: the stores have forked)"),
                    source,
                })
            }
        }
        Err(e) => Err(e),
    }
}

#[async_trait]
impl ObjectStore for MirrorStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let mode = opts.mode.clone();
        let mirror_opts = PutOptions {
            // An update's version tag belongs to the primary; the mirror is overwritten.
            mode: match &mode {
                PutMode::Update(_) => PutMode::Overwrite,
                m => m.clone(),
            },
            ..opts.clone()
        };
        let r = self
            .primary
            .put_opts(location, payload.clone(), opts)
            .await?;
        let m = self
            .mirror
            .put_opts(location, payload.clone(), mirror_opts)
            .await;
        mirror_ok(self.mirror.as_ref(), location, &payload, m, &mode).await?;
        Ok(r)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let primary = self
            .primary
            .put_multipart_opts(location, opts.clone())
            .await?;
        let mirror = self.mirror.put_multipart_opts(location, opts).await?;
        Ok(Box::new(MirrorUpload { primary, mirror }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.primary.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let mirror = self.mirror.clone();
        self.primary
            .delete_stream(locations)
            .then(move |r| {
                let mirror = mirror.clone();
                async move {
                    let p = r?;
                    match mirror.delete(&p).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(p),
                        Err(e) => Err(e),
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.primary.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.primary.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.primary.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.primary.copy_opts(from, to, options.clone()).await?;
        self.mirror.copy_opts(from, to, options).await
    }
}

#[derive(Debug)]
struct MirrorUpload {
    primary: Box<dyn MultipartUpload>,
    mirror: Box<dyn MultipartUpload>,
}

#[async_trait]
impl MultipartUpload for MirrorUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let a = self.primary.put_part(data.clone());
        let b = self.mirror.put_part(data);
        Box::pin(async move {
            let (a, b) = futures::join!(a, b);
            a.and(b)
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let r = self.primary.complete().await?;
        self.mirror.complete().await?;
        Ok(r)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let (a, b) = futures::join!(self.primary.abort(), self.mirror.abort());
        a.and(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn every_write_reaches_both_sides_and_reads_come_from_the_primary() {
        let a: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let b: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let m = MirrorStore::new(a.clone(), b.clone());
        let p = Path::from("x/1");
        m.put_opts(
            &p,
            PutPayload::from_static(b"one"),
            PutOptions::from(PutMode::Create),
        )
        .await
        .expect("put");
        assert_eq!(
            b.get(&p)
                .await
                .expect("mirror")
                .bytes()
                .await
                .expect("b")
                .as_ref(),
            b"one"
        );

        // An object an earlier sync already copied to the mirror does not fail a create.
        let q = Path::from("x/2");
        b.put(&q, PutPayload::from_static(b"two"))
            .await
            .expect("seed");
        m.put_opts(
            &q,
            PutPayload::from_static(b"two"),
            PutOptions::from(PutMode::Create),
        )
        .await
        .expect("create over a synced copy");
        // …but different bytes under the same name are a fork, and fail.
        let r = Path::from("x/fork");
        b.put(&r, PutPayload::from_static(b"theirs"))
            .await
            .expect("seed");
        let err = m
            .put_opts(
                &r,
                PutPayload::from_static(b"ours"),
                PutOptions::from(PutMode::Create),
            )
            .await
            .expect_err("fork");
        assert!(err.to_string().contains("forked"), "{err}");

        let mut up = m.put_multipart(&Path::from("x/3")).await.expect("mpu");
        up.put_part(PutPayload::from_static(b"abc"))
            .await
            .expect("part");
        up.complete().await.expect("complete");
        assert_eq!(
            b.head(&Path::from("x/3")).await.expect("mirror mpu").size,
            3
        );

        m.delete(&p).await.expect("delete");
        assert!(matches!(
            b.head(&p).await,
            Err(object_store::Error::NotFound { .. })
        ));

        // Reads never touch the mirror.
        b.put(&Path::from("only-b"), PutPayload::from_static(b"b"))
            .await
            .expect("b");
        assert!(m.head(&Path::from("only-b")).await.is_err());
    }
}
