//! Wake-ups for background jobs that API calls start: `RotateSecret`
//! wakes the rotation job at once instead of leaving the work to its
//! next periodic pass.

use tokio::sync::Notify;

#[derive(Default)]
pub struct Jobs {
    rotation: Notify,
}

impl Jobs {
    /// A rotation was asked for. Wakes the job if it waits, or makes its
    /// next wait return at once.
    pub fn wake_rotation(&self) {
        self.rotation.notify_one();
    }

    /// Returns when [`Self::wake_rotation`] is called (or was, since the
    /// last return).
    pub async fn rotation_requested(&self) {
        self.rotation.notified().await;
    }
}
