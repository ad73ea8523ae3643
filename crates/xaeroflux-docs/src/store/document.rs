//! An editing handle: a loro document loaded from the view, whose own edits are
//! written as document update events.

use std::sync::Arc;

use loro::{Counter, ExportMode, IdSpan, LoroDoc, LoroList, LoroMap, LoroText, LoroValue};
use xaeroflux::{EventId, GroupId};

use super::{DocError, Inner, Result, tables};
use crate::update::{DOC_UPDATE_TYPE, DocUpdate};

/// Document `name` of a group, open for editing ([`Docs::edit`](super::Docs::edit)).
///
/// It is a loro document with a fresh random peer id (loro's default), so two handles
/// never write the same operation ids, even for the same author on two devices. Edit
/// it through loro's containers; [`Document::commit`] writes the edits made through
/// this handle since its last commit as one event of type [`DOC_UPDATE_TYPE`], like
/// [`Engine::write_event`](xaeroflux::Engine::write_event). Edits of other handles
/// and peers reach it with [`Document::refresh`]. It holds the store open until dropped.
pub struct Document {
    inner: Arc<Inner>,
    group: GroupId,
    name: String,
    doc: LoroDoc,
    /// This handle's peer's operations below this counter were written.
    sent: Counter,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("name", &self.name)
            .field("peer", &self.doc.peer_id())
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl Document {
    pub(crate) fn new(inner: Arc<Inner>, group: GroupId, name: String, doc: LoroDoc) -> Self {
        let sent = own_end(&doc);
        Document {
            inner,
            group,
            name,
            doc,
            sent,
        }
    }

    /// The document's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The document's group.
    pub fn group(&self) -> &GroupId {
        &self.group
    }

    /// The rich-text container `name` (created on first use).
    pub fn text(&self, name: &str) -> LoroText {
        self.doc.get_text(name)
    }

    /// The list container `name` (created on first use).
    pub fn list(&self, name: &str) -> LoroList {
        self.doc.get_list(name)
    }

    /// The map container `name` (created on first use).
    pub fn map(&self, name: &str) -> LoroMap {
        self.doc.get_map(name)
    }

    /// The loro document itself (other containers, cursors, undo, history).
    pub fn loro(&self) -> &LoroDoc {
        &self.doc
    }

    /// The whole document as a value (every container, deeply).
    pub fn value(&self) -> LoroValue {
        self.doc.get_deep_value()
    }

    /// Writes the edits made through this handle since its last commit as one
    /// document update event; `None` if there were none. An update must fit in one
    /// event (the store refuses larger payloads): commit large pastes in parts.
    pub fn commit(&mut self) -> Result<Option<EventId>> {
        self.doc.commit();
        let peer = self.doc.peer_id();
        let end = own_end(&self.doc);
        if end <= self.sent {
            return Ok(None);
        }
        let update = self
            .doc
            .export(ExportMode::updates_in_range(vec![IdSpan::new(
                peer, self.sent, end,
            )]))
            .map_err(|source| DocError::Export {
                doc: self.name.clone(),
                source,
            })?;
        let payload = DocUpdate {
            doc: &self.name,
            update: &update,
        }
        .encode()?;
        let id = self
            .inner
            .store
            .write_reserved_to(&self.group, &payload, DOC_UPDATE_TYPE)?;
        self.sent = end;
        Ok(Some(id))
    }

    /// Imports what the view holds now (edits of other handles and peers applied
    /// since this handle was opened or refreshed). Uncommitted edits of this handle
    /// are kept (loro commits them locally first) and written by the next commit.
    pub fn refresh(&mut self) -> Result<()> {
        let rtxn = self.inner.env.read_txn()?;
        let key = tables::doc_key(&self.group, &self.name);
        if let Some(snapshot) = self.inner.t.snapshots.get(&rtxn, &key)? {
            self.doc
                .import(snapshot)
                .map_err(|e| tables::corrupt("snapshots", e.to_string()))?;
        }
        let mut updates = Vec::new();
        for row in self.inner.t.updates.prefix_iter(&rtxn, &key)? {
            updates.push(row?.1.to_vec());
        }
        if !updates.is_empty() {
            self.doc
                .import_batch(&updates)
                .map_err(|e| tables::corrupt("updates", e.to_string()))?;
        }
        Ok(())
    }
}

/// The end of this document's own peer's operations.
fn own_end(doc: &LoroDoc) -> Counter {
    doc.oplog_vv()
        .get(&doc.peer_id())
        .copied()
        .unwrap_or_default()
}
