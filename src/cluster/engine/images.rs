//! Images: inspected, listed, built from a context and removed. Docker's errors
//! are handed back as they are: `crate::images` words them for the image at hand.

use std::collections::HashMap;

use bollard::errors::Error as BollardError;
use bollard::models::{ImageInspect, ImageSummary};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use futures_util::StreamExt;

use super::{is_status, Engine};

/// Why a build did not finish.
#[derive(Debug)]
pub enum BuildError {
    /// The build itself failed (an `errorDetail` in its progress stream): Docker's
    /// message.
    Failed(String),
    /// The call failed.
    Call(BollardError),
}

impl Engine {
    /// An image by tag or id, `None` when there is no such image.
    pub async fn image(&self, tag: &str) -> Result<Option<ImageInspect>, BollardError> {
        match self.docker.inspect_image(tag).await {
            Ok(found) => Ok(Some(found)),
            Err(err) if is_status(&err, &[404]) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The images whose reference matches `reference` (`sessionstorm/*`).
    pub async fn images(&self, reference: &str) -> Result<Vec<ImageSummary>, BollardError> {
        let filters = HashMap::from([("reference", vec![reference])]);
        let options = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        self.docker.list_images(Some(options)).await
    }

    /// Builds the `Dockerfile` of a tar `context` as `tag` (`nocache` bypasses the
    /// build cache), handing each line of build output to `line`.
    pub async fn build_image(
        &self,
        tag: &str,
        context: Vec<u8>,
        nocache: bool,
        mut line: impl FnMut(&str),
    ) -> Result<(), BuildError> {
        let options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(tag)
            .rm(true)
            .forcerm(true)
            .nocache(nocache)
            .build();
        let mut stream =
            (self.docker).build_image(options, None, Some(bollard::body_full(context.into())));
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream.as_deref() {
                        line(text);
                    }
                }
                Err(BollardError::DockerStreamError { error }) => {
                    return Err(BuildError::Failed(error))
                }
                Err(err) => return Err(BuildError::Call(err)),
            }
        }
        Ok(())
    }

    /// Removes an image, unless a container still uses it.
    pub async fn remove_image(&self, id: &str) -> Result<(), BollardError> {
        let options = RemoveImageOptionsBuilder::default()
            .force(false)
            .noprune(false)
            .build();
        self.docker
            .remove_image(id, Some(options), None)
            .await
            .map(drop)
    }
}
