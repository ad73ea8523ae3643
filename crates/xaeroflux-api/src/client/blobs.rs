//! The blob calls of [`Client`]: uploads and downloads are streamed, never held whole.

use std::io::{Read, Write};
use std::path::Path;

use super::{Client, ClientError, enc};
use crate::routes::blobs::{BlobAdded, BlobFetched, BlobJson};

fn io_err(e: std::io::Error) -> ClientError {
    ClientError::Decode {
        status: 0,
        detail: e.to_string(),
    }
}

impl Client {
    /// `POST /v1/blobs`: uploads the file at `path`, streamed; with `group`, also
    /// writes the attachment event (named `name`) there.
    pub fn blob_add(
        &self,
        path: &Path,
        group: Option<&str>,
        name: &str,
    ) -> Result<BlobAdded, ClientError> {
        let file = std::fs::File::open(path).map_err(io_err)?;
        let mut url = format!("{}/v1/blobs", self.base);
        if let Some(g) = group {
            url.push_str(&format!("?group={}&name={}", enc(g), enc(name)));
        }
        Self::finish(
            self.agent
                .post(url)
                .header("Authorization", self.auth())
                .header("Content-Type", "application/octet-stream")
                .send(file),
        )
    }

    /// `GET /v1/blobs`: every blob the daemon holds.
    pub fn blob_list(&self) -> Result<Vec<BlobJson>, ClientError> {
        self.get_json("/v1/blobs")
    }

    /// `GET /v1/blobs/{hash}/info`: `None` when none of it is there.
    pub fn blob_info(&self, hash: &str) -> Result<Option<BlobJson>, ClientError> {
        match self.get_json(&format!("/v1/blobs/{}/info", enc(hash))) {
            Ok(i) => Ok(Some(i)),
            Err(e) if e.code() == Some("not_found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /v1/blobs/{hash}/fetch`: the daemon fetches the blob from its group's
    /// peers (resuming); returns when it is complete there.
    pub fn blob_fetch(&self, hash: &str) -> Result<BlobFetched, ClientError> {
        Self::finish(
            self.agent
                .post(format!("{}/v1/blobs/{}/fetch", self.base, enc(hash)))
                .header("Authorization", self.auth())
                .send_empty(),
        )
    }

    /// `GET /v1/blobs/{hash}`: streams the blob into `out`, calling `progress` with
    /// the bytes written so far and the size; returns the size.
    pub fn blob_download(
        &self,
        hash: &str,
        out: &mut dyn Write,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<u64, ClientError> {
        let mut resp = self
            .agent
            .get(format!("{}/v1/blobs/{}", self.base, enc(hash)))
            .header("Authorization", self.auth())
            .call()?;
        if resp.status().as_u16() >= 400 {
            return Self::finish::<()>(Ok(resp)).map(|()| 0);
        }
        let size = resp.body().content_length().unwrap_or(0);
        let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        let mut buf = vec![0u8; 256 * 1024];
        let mut done = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(io_err)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(io_err)?;
            done += n as u64;
            progress(done, size);
        }
        if done != size {
            return Err(ClientError::Decode {
                status: 200,
                detail: format!("the download ended after {done} of {size} bytes"),
            });
        }
        Ok(done)
    }
}
