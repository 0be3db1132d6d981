//! The page's components, one per file.

mod input;
mod loader;
mod message_list;
mod status;
mod toast;
mod welcome;

pub use input::MessageInput;
pub use loader::SessionRestoreLoader;
pub use message_list::MessageList;
pub use status::ConnectionStatus;
pub use toast::Toasts;
pub use welcome::WelcomeModal;
