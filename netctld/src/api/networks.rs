//! `/networks`: create, list, inspect, connect, disconnect, prune, remove.

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use netctl_engine::filter::NetworkFilter;
use netctl_engine::network::{parse_subnet, CreateRequest, Driver};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{body, filters, status, ApiError, ApiResult, Daemon, Query};

/// The routes.
pub fn routes() -> Router<Daemon> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

async fn list(State(d): State<Daemon>, q: Query) -> ApiResult<Json<Vec<Value>>> {
    let wanted = filters(&q)?;
    d.run(move |engine| {
        let filter = NetworkFilter::parse(&wanted)?;
        let all = engine.networks()?.all()?;
        let mut out = Vec::new();
        for n in all
            .iter()
            .filter(|n| filter.matches(n, || !n.attachments(engine).is_empty()))
        {
            out.push(serde_json::to_value(netctl_engine::view::network_summary(
                n,
            ))?);
        }
        Ok(Json(out))
    })
    .await
}

async fn inspect(State(d): State<Daemon>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    d.run(move |engine| {
        let n = engine.networks()?.find(&id)?;
        Ok(Json(serde_json::to_value(
            netctl_engine::view::inspect_network(engine, &n),
        )?))
    })
    .await
}

/// `POST /networks/create`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: String,
    internal: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "EnableIPv4")]
    enable_ipv4: Option<bool>,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    options: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
    scope: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: String,
    config: Option<Vec<IpamConfig>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: String,
    #[serde(rename = "IPRange")]
    ip_range: String,
    gateway: String,
    #[serde(rename = "AuxiliaryAddresses")]
    aux_addresses: Option<BTreeMap<String, String>>,
}

impl CreateBody {
    /// The engine's request: one `--ip-range` and one `--gateway` (netctl keeps one of each).
    fn request(self) -> ApiResult<CreateRequest> {
        let driver = match self.driver.as_str() {
            "" | "bridge" => Driver::Bridge,
            "macvlan" => Driver::Macvlan,
            "overlay" => Driver::Overlay,
            other => return Err(ApiError::not_found(format!("plugin \"{other}\" not found"))),
        };
        let ipam = self.ipam.unwrap_or_default();
        if !matches!(ipam.driver.as_str(), "" | "default") {
            return Err(ApiError::not_found(format!(
                "plugin \"{}\" not found",
                ipam.driver
            )));
        }
        let config = ipam.config.unwrap_or_default();
        let mut aux_addresses = BTreeMap::new();
        for (name, ip) in config.iter().flat_map(|c| c.aux_addresses.iter().flatten()) {
            let ip = ip
                .parse::<IpAddr>()
                .map_err(|_| ApiError::bad_request(format!("invalid aux-address {name}={ip}")))?;
            aux_addresses.insert(name.clone(), ip);
        }
        let one = |what: &str, pick: fn(&IpamConfig) -> &str| -> ApiResult<Option<String>> {
            let given: Vec<&str> = config.iter().map(pick).filter(|v| !v.is_empty()).collect();
            match given.as_slice() {
                [] => Ok(None),
                [v] => Ok(Some(v.to_string())),
                _ => Err(ApiError::bad_request(format!(
                    "netctl takes one {what} per network"
                ))),
            }
        };
        let gateway = one("gateway", |c| &c.gateway)?
            .map(|g| {
                g.parse::<IpAddr>()
                    .map_err(|_| ApiError::bad_request(format!("invalid gateway {g}")))
            })
            .transpose()?;
        Ok(CreateRequest {
            name: self.name,
            driver,
            subnets: config
                .iter()
                .filter(|c| !c.subnet.is_empty())
                .map(|c| parse_subnet(&c.subnet))
                .collect::<Result<_, _>>()?,
            ip_range: one("IP range", |c| &c.ip_range)?
                .map(|r| parse_subnet(&r))
                .transpose()?,
            gateway,
            ipv6: self.enable_ipv6,
            no_ipv4: self.enable_ipv4 == Some(false),
            internal: self.internal,
            labels: self.labels.unwrap_or_default(),
            options: self.options.unwrap_or_default(),
            aux_addresses,
            routes: Vec::new(),
            dns_servers: Vec::new(),
            scope: Some(self.scope).filter(|s| !s.is_empty()),
        })
    }
}

async fn create(State(d): State<Daemon>, bytes: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let req = body::<CreateBody>(&bytes)?;
    if req.name.is_empty() {
        return Err(ApiError::bad_request("network name is required"));
    }
    let req = req.request()?;
    d.run(move |engine| {
        let n = netctl_engine::network::create(engine, &req)?;
        Ok((
            StatusCode::CREATED,
            Json(json!({"Id": n.id, "Warning": ""})),
        ))
    })
    .await
}

async fn remove(State(d): State<Daemon>, Path(id): Path<String>) -> ApiResult<Response> {
    d.run(move |engine| {
        netctl_engine::lifecycle::repair(engine)?;
        let store = engine.networks()?;
        let n = store.find(&id)?;
        if netctl_engine::network::PREDEFINED.contains(&n.name.as_str()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("{} is a pre-defined network and cannot be removed", n.name),
            ));
        }
        store.remove(engine, &n)?;
        Ok(status(StatusCode::NO_CONTENT))
    })
    .await
}

async fn prune(State(d): State<Daemon>, q: Query) -> ApiResult<Json<Value>> {
    let wanted = filters(&q)?;
    if !wanted.is_empty() {
        return Err(ApiError::bad_request(
            "netctl prunes networks without filters",
        ));
    }
    d.run(|engine| {
        netctl_engine::lifecycle::repair(engine)?;
        let pruned = netctl_engine::system::prune_networks(engine)?;
        Ok(Json(json!({"NetworksDeleted": pruned.deleted})))
    })
    .await
}

/// `POST /networks/{id}/connect`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<EndpointConfig>,
}

/// An endpoint's settings, as in `NetworkingConfig.EndpointsConfig`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointConfig {
    /// Addresses asked for.
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpam>,
    /// Network-scoped aliases.
    pub aliases: Option<Vec<String>>,
    /// A MAC address (API 1.44 places it here).
    pub mac_address: String,
    /// The endpoint's driver options, kept as given.
    pub driver_opts: Option<std::collections::BTreeMap<String, String>>,
    /// Docker 28's `GwPriority`: the network with the highest carries the default route.
    pub gw_priority: i64,
    /// `NAME:ALIAS` links on a user network.
    pub links: Option<Vec<String>>,
}

/// `EndpointConfig.IPAMConfig`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointIpam {
    /// `--ip`.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// `--ip6`.
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
    /// `--link-local-ip`.
    #[serde(rename = "LinkLocalIPs")]
    pub link_local_ips: Option<Vec<String>>,
}

impl EndpointConfig {
    /// The links asked for.
    pub fn links(&self) -> ApiResult<Vec<netctl_dnsrecords::Link>> {
        self.links
            .iter()
            .flatten()
            .map(|l| {
                netctl_engine::spec::parse_endpoint_link(l)
                    .map_err(|e| ApiError::bad_request(e.to_string()))
            })
            .collect()
    }

    /// The link-local addresses asked for.
    pub fn link_local_ips(&self) -> ApiResult<Vec<IpAddr>> {
        let Some(all) = self
            .ipam_config
            .as_ref()
            .and_then(|i| i.link_local_ips.as_ref())
        else {
            return Ok(Vec::new());
        };
        all.iter()
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.parse().map_err(|_| {
                    ApiError::bad_request(format!("Invalid link-local IP address: {all:?}"))
                })
            })
            .collect()
    }

    /// The addresses asked for.
    pub fn ips(&self) -> ApiResult<Vec<IpAddr>> {
        let Some(ipam) = &self.ipam_config else {
            return Ok(Vec::new());
        };
        [&ipam.ipv4_address, &ipam.ipv6_address]
            .into_iter()
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid IP address {a}")))
            })
            .collect()
    }
}

async fn connect(
    State(d): State<Daemon>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let req = body::<ConnectBody>(&bytes)?;
    let ep = req.endpoint_config.unwrap_or_default();
    let asked = netctl_engine::netattach::ConnectRequest {
        ips: ep.ips()?,
        links: ep.links()?,
        link_local_ips: ep.link_local_ips()?,
        aliases: ep.aliases.unwrap_or_default(),
        driver_opts: ep.driver_opts.unwrap_or_default(),
        gw_priority: ep.gw_priority,
    };
    d.run(move |engine| {
        netctl_engine::netattach::connect(engine, &id, &req.container, &asked)?;
        Ok(status(StatusCode::OK))
    })
    .await
}

/// `POST /networks/{id}/disconnect`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DisconnectBody {
    container: String,
    force: bool,
}

async fn disconnect(
    State(d): State<Daemon>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let req = body::<DisconnectBody>(&bytes)?;
    d.run(move |engine| {
        netctl_engine::netattach::disconnect(engine, &id, &req.container, req.force)?;
        Ok(status(StatusCode::OK))
    })
    .await
}
