//! The app-state routes from the client: records, relations, the state root and
//! collaborative documents (what `xaeroflux kv` and `xaeroflux doc` use through a
//! daemon).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Client, ClientError, enc};
use crate::model::{
    DocJson, DocList, DocTextJson, FieldsRequest, LinkRequest, LinksJson, RecordJson, RecordPage,
    StateRootJson, StateWriteResponse, TextEdit,
};

/// `?group=G&...` of the given pairs (absent ones left out).
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn record_path(collection: &str, key: &str) -> String {
    format!("/v1/records/{}/{}", enc(collection), enc(key))
}

impl Client {
    fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Decode {
            status: 0,
            detail: e.to_string(),
        })?;
        let url = format!("{}{path}", self.base);
        let req = match method {
            "PUT" => self.agent.put(url),
            "PATCH" => self.agent.patch(url),
            _ => self.agent.post(url),
        };
        Self::finish(
            req.header("Authorization", self.auth())
                .header("Content-Type", "application/json")
                .send(&bytes[..]),
        )
    }

    /// `None` for a `not_found` problem.
    fn optional<T>(r: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code() == Some("not_found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT /v1/records/{collection}/{key}`: the record becomes exactly these fields.
    pub fn put_record(
        &self,
        collection: &str,
        key: &str,
        req: &FieldsRequest,
    ) -> Result<StateWriteResponse, ClientError> {
        self.send_json("PUT", &record_path(collection, key), req)
    }

    /// `PATCH /v1/records/{collection}/{key}`: sets fields (`null` unsets one).
    pub fn patch_record(
        &self,
        collection: &str,
        key: &str,
        req: &FieldsRequest,
    ) -> Result<StateWriteResponse, ClientError> {
        self.send_json("PATCH", &record_path(collection, key), req)
    }

    /// `GET /v1/records/{collection}/{key}` (as of an HLC): `None` if absent.
    pub fn record(
        &self,
        collection: &str,
        key: &str,
        group: Option<&str>,
        as_of: Option<u64>,
    ) -> Result<Option<RecordJson>, ClientError> {
        let q = query(&[
            ("group", group.map(str::to_owned)),
            ("as_of", as_of.map(|h| h.to_string())),
        ]);
        Self::optional(self.get_json(&format!("{}{q}", record_path(collection, key))))
    }

    /// `DELETE /v1/records/{collection}/{key}`.
    pub fn delete_record(
        &self,
        collection: &str,
        key: &str,
        group: Option<&str>,
    ) -> Result<StateWriteResponse, ClientError> {
        let q = query(&[("group", group.map(str::to_owned))]);
        Self::finish(
            self.agent
                .delete(format!("{}{}{q}", self.base, record_path(collection, key)))
                .header("Authorization", self.auth())
                .call(),
        )
    }

    /// `GET /v1/records/{collection}`: one page of a scan in key order, after `after`.
    pub fn scan(
        &self,
        collection: &str,
        prefix: &str,
        group: Option<&str>,
        after: Option<&str>,
    ) -> Result<RecordPage, ClientError> {
        let q = query(&[
            ("group", group.map(str::to_owned)),
            ("prefix", (!prefix.is_empty()).then(|| prefix.to_owned())),
            ("after", after.map(str::to_owned)),
        ]);
        self.get_json(&format!("/v1/records/{}{q}", enc(collection)))
    }

    /// `POST /v1/links`: adds (or removes) a relation.
    pub fn link(&self, req: &LinkRequest) -> Result<StateWriteResponse, ClientError> {
        self.send_json("POST", "/v1/links", req)
    }

    /// `GET /v1/records/{collection}/{key}/links`.
    pub fn links(
        &self,
        collection: &str,
        key: &str,
        group: Option<&str>,
    ) -> Result<LinksJson, ClientError> {
        let q = query(&[("group", group.map(str::to_owned))]);
        self.get_json(&format!("{}/links{q}", record_path(collection, key)))
    }

    /// `GET /v1/state-root`.
    pub fn state_root(&self, group: Option<&str>) -> Result<StateRootJson, ClientError> {
        let q = query(&[("group", group.map(str::to_owned))]);
        self.get_json(&format!("/v1/state-root{q}"))
    }

    /// `GET /v1/docs`.
    pub fn docs(&self, group: Option<&str>) -> Result<DocList, ClientError> {
        let q = query(&[("group", group.map(str::to_owned))]);
        self.get_json(&format!("/v1/docs{q}"))
    }

    /// `GET /v1/docs/{name}`: the whole document, `None` if absent.
    pub fn doc(&self, name: &str, group: Option<&str>) -> Result<Option<DocJson>, ClientError> {
        let q = query(&[("group", group.map(str::to_owned))]);
        Self::optional(self.get_json(&format!("/v1/docs/{}{q}", enc(name))))
    }

    /// `GET /v1/docs/{name}/text`: one container's text, `None` if the document is
    /// absent.
    pub fn doc_text(
        &self,
        name: &str,
        container: Option<&str>,
        group: Option<&str>,
    ) -> Result<Option<String>, ClientError> {
        let q = query(&[
            ("group", group.map(str::to_owned)),
            ("container", container.map(str::to_owned)),
        ]);
        let t: Option<DocTextJson> =
            Self::optional(self.get_json(&format!("/v1/docs/{}/text{q}", enc(name))))?;
        Ok(t.map(|t| t.text))
    }

    /// `POST /v1/docs/{name}/text`: a text edit (creates the document if needed).
    pub fn edit_text(
        &self,
        name: &str,
        edit: &TextEdit,
    ) -> Result<StateWriteResponse, ClientError> {
        self.send_json("POST", &format!("/v1/docs/{}/text", enc(name)), edit)
    }
}
