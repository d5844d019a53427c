//! `file`: entities read from files in a folder, and tasks appended to a file.

mod publisher;
mod subscriber;

pub use subscriber::{FileFormat, PROCESSED_DIR, move_aside};

use super::Kind;

pub static KIND: Kind = Kind {
    name: "file",
    subscriber: Some(&subscriber::FileSubscriber),
    publisher: Some(&publisher::FilePublisher),
    connection: None,
};
