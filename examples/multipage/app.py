"""A three-page FluxLit app sharing one API: notes on one page, a per-session profile, and a file upload."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import UploadFile
from pydantic import BaseModel

from fluxlit import FluxLit, Query
from fluxlit.client import ApiClient

app = FluxLit(title="FluxLit Multipage")

_notes: list[str] = []
_notes_lock = threading.Lock()  # API handlers run in a thread pool


class NewNote(BaseModel):
    text: str


@app.api.get("/notes")
def list_notes() -> dict[str, list[str]]:
    with _notes_lock:
        return {"notes": list(_notes)}


@app.api.post("/notes", status_code=201)
def add_note(note: NewNote) -> dict[str, int]:
    with _notes_lock:
        _notes.append(note.text)
        return {"count": len(_notes)}


@app.api.post("/uploads")
async def measure_upload(file: UploadFile) -> dict[str, Any]:
    data = await file.read()
    return {"name": file.filename, "size": len(data)}


@app.page("/", title="Notes", icon=":material/edit_note:")
def notes(st: Any, client: ApiClient, /) -> None:
    """Shared notes, stored by the API."""
    st.title("Notes")
    with st.form("new-note", clear_on_submit=True):
        text = st.text_input("New note")
        if st.form_submit_button("Add") and text.strip():
            # The client returns error statuses as responses (as httpx does): a failed save must show.
            client.post("/notes", json={"text": text.strip()}).raise_for_status()
    response = client.get("/notes")
    response.raise_for_status()
    listed = response.json()["notes"]
    st.write(f"{len(listed)} note(s) from the API")
    for note in listed:
        st.markdown(f"- {note}")


@app.page("/profile", title="Profile", icon=":material/person:")
def profile(st: Any, client: ApiClient, /, greeting: str = Query("greeting", default="Hello")) -> None:
    """Per-session state that survives moving between pages."""
    st.title("Profile")
    name = st.text_input("Your name", key="profile_name")
    st.session_state["profile_saved_name"] = name or st.session_state.get("profile_saved_name", "")
    saved = st.session_state.get("profile_saved_name") or "stranger"
    st.write(f"{greeting}, {saved}!")


@app.page("/upload", title="Upload", icon=":material/upload:")
def upload(st: Any, client: ApiClient, /) -> None:
    """A file goes browser -> Streamlit (with its XSRF check) -> this page -> the API."""
    st.title("Upload")
    uploaded = st.file_uploader("Pick a file")
    if uploaded is not None:
        data = uploaded.getvalue()
        response = client.post("/uploads", files={"file": (uploaded.name, data)})
        response.raise_for_status()
        measured = response.json()
        st.write(f"Uploaded {measured['name']}: {measured['size']} bytes")
