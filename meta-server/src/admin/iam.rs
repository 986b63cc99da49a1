//! The IAM part of the `Admin` service: S3 users and custom policies.
//!
//! Writes go through the log ([`Command::CreateUser`] and friends), so every meta node and
//! every gateway sees the same users; reads are linearizable, so a user disabled or removed
//! here is refused by every gateway as soon as its lookup cache expires. The root key pair
//! (the admin credentials) is not a user and cannot be created as one.

use cairn_proto::admin::*;
use cairn_proto::iam::{valid_access_key, valid_policy_name, valid_secret_key};
use cairn_proto::meta::MetaError;
use prost::Message;
use tonic::Status;

use super::{internal, AdminService};
use crate::service::group_status;
use crate::types::{Command, Response as Applied};

/// Maps the state machine's answer to an IAM command.
fn outcome(applied: Applied, subject: &str) -> Result<Option<IamUser>, Status> {
    match applied {
        Applied::Done => Ok(None),
        Applied::User { user } => Ok(Some(IamUser::decode(user.as_slice()).map_err(internal)?)),
        Applied::Error { code } => Err(match MetaError::try_from(code) {
            Ok(MetaError::UserAlreadyExists) => {
                Status::already_exists(format!("user {subject:?} already exists"))
            }
            Ok(MetaError::NoSuchUser) => Status::not_found(format!("no user {subject:?}")),
            Ok(MetaError::NoSuchPolicy) => Status::not_found(format!(
                "{subject}: no such policy (canned: readwrite, readonly, writeonly, admin; add custom ones with `cairn admin policy add`)"
            )),
            Ok(MetaError::PolicyInUse) => Status::failed_precondition(format!(
                "policy {subject:?} is attached to a user: detach it first"
            )),
            _ => Status::invalid_argument(format!("{subject}: refused ({code})")),
        }),
        other => Err(internal(format!("unexpected reply {other:?}"))),
    }
}

impl AdminService {
    async fn iam_write(&self, command: Command, subject: &str) -> Result<Option<IamUser>, Status> {
        let applied = self.group()?.write(command).await.map_err(group_status)?;
        outcome(applied, subject)
    }

    fn is_root(&self, access_key: &str) -> bool {
        self.ctx
            .credentials
            .as_ref()
            .is_some_and(|c| c.access_key == access_key)
    }

    /// `AddUser`.
    pub(super) async fn iam_add_user(
        &self,
        request: AddUserRequest,
    ) -> Result<AddUserResponse, Status> {
        let user = request
            .user
            .ok_or_else(|| Status::invalid_argument("a user is required"))?;
        if !valid_access_key(&user.access_key) {
            return Err(Status::invalid_argument(
                "an access key has 3 to 128 characters from [A-Za-z0-9._-]",
            ));
        }
        if !valid_secret_key(&user.secret_key) {
            return Err(Status::invalid_argument(
                "a secret key has 8 to 128 characters and no control characters",
            ));
        }
        if self.is_root(&user.access_key) {
            return Err(Status::already_exists(
                "that access key is the root's: it cannot be a user",
            ));
        }
        let key = user.access_key.clone();
        let created = self
            .iam_write(
                Command::CreateUser {
                    user: user.encode_to_vec(),
                },
                &key,
            )
            .await?;
        tracing::info!(access_key = %key, "S3 user created");
        Ok(AddUserResponse {
            user: created.map(|u| IamUser {
                secret_key: String::new(),
                ..u
            }),
        })
    }

    /// `ListUsers`: without secrets.
    pub(super) async fn iam_list_users(&self) -> Result<ListUsersResponse, Status> {
        let reader = self
            .group()?
            .linearizable_reader()
            .await
            .map_err(group_status)?;
        let users = reader
            .users()
            .map_err(internal)?
            .into_iter()
            .map(|u| IamUser {
                secret_key: String::new(),
                ..u
            })
            .collect();
        Ok(ListUsersResponse { users })
    }

    /// `GetUser`: with the secret and the user's custom policy documents.
    pub(super) async fn iam_get_user(
        &self,
        request: GetUserRequest,
    ) -> Result<GetUserResponse, Status> {
        let reader = self
            .group()?
            .linearizable_reader()
            .await
            .map_err(group_status)?;
        let user = reader
            .user(&request.access_key)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no user {:?}", request.access_key)))?;
        let mut policies = Vec::new();
        for name in &user.policies {
            if let Some(policy) = reader.policy(name).map_err(internal)? {
                policies.push(policy);
            }
        }
        Ok(GetUserResponse {
            user: Some(user),
            policies,
        })
    }

    /// `UpdateUser`.
    pub(super) async fn iam_update_user(
        &self,
        request: UpdateUserRequest,
    ) -> Result<UpdateUserResponse, Status> {
        let key = request.access_key.clone();
        let subject = if request.attach.is_empty() {
            key.clone()
        } else {
            format!("{key} / {}", request.attach.join(","))
        };
        let user = self
            .iam_write(
                Command::UpdateUser {
                    access_key: request.access_key,
                    enabled: request.enabled,
                    attach: request.attach,
                    detach: request.detach,
                },
                &subject,
            )
            .await?;
        tracing::info!(access_key = %key, "S3 user changed");
        Ok(UpdateUserResponse {
            user: user.map(|u| IamUser {
                secret_key: String::new(),
                ..u
            }),
        })
    }

    /// `RemoveUser`.
    pub(super) async fn iam_remove_user(&self, request: RemoveUserRequest) -> Result<(), Status> {
        let key = request.access_key;
        self.iam_write(
            Command::DeleteUser {
                access_key: key.clone(),
            },
            &key,
        )
        .await?;
        tracing::info!(access_key = %key, "S3 user removed");
        Ok(())
    }

    /// `PutPolicy`: the document must be a JSON object; its IAM grammar is checked by the
    /// caller (`cairn admin policy add` parses it with the gateway's evaluator), and a
    /// gateway refuses everything to a user whose policy it cannot parse.
    pub(super) async fn iam_put_policy(&self, request: PutPolicyRequest) -> Result<(), Status> {
        if !valid_policy_name(&request.name) {
            return Err(Status::invalid_argument(format!(
                "policy name {:?}: 1 to 128 characters from [A-Za-z0-9+=,.@_-], not a canned name",
                request.name
            )));
        }
        let parsed: serde_json::Value = serde_json::from_str(&request.document)
            .map_err(|e| Status::invalid_argument(format!("policy document: {e}")))?;
        if !parsed.is_object() {
            return Err(Status::invalid_argument(
                "policy document: a JSON object is required",
            ));
        }
        let name = request.name.clone();
        self.iam_write(
            Command::PutPolicy {
                name: request.name,
                document: request.document,
            },
            &name,
        )
        .await?;
        tracing::info!(policy = %name, "custom policy stored");
        Ok(())
    }

    /// `ListPolicies`.
    pub(super) async fn iam_list_policies(&self) -> Result<ListPoliciesResponse, Status> {
        let reader = self
            .group()?
            .linearizable_reader()
            .await
            .map_err(group_status)?;
        Ok(ListPoliciesResponse {
            policies: reader.policies().map_err(internal)?,
        })
    }

    /// `RemovePolicy`.
    pub(super) async fn iam_remove_policy(
        &self,
        request: RemovePolicyRequest,
    ) -> Result<(), Status> {
        let name = request.name;
        self.iam_write(Command::DeletePolicy { name: name.clone() }, &name)
            .await?;
        tracing::info!(policy = %name, "custom policy removed");
        Ok(())
    }
}
