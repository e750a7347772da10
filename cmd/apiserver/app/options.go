// Package app turns the command line of the rollout API server into a
// running server: flags, their defaults and validation, and the run loop.
package app

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/healthz"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	serverstorage "k8s.io/apiserver/pkg/server/storage"
	"k8s.io/apiserver/pkg/util/compatibility"
	basecompatibility "k8s.io/component-base/compatibility"
	netutils "k8s.io/utils/net"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/validation"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apiserver"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/embeddedetcd"
	generatedopenapi "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/openapi"
)

// EtcdPathPrefix is where rollouts live in etcd; distinct from kube-apiserver's
// /registry so the two can share an etcd cluster.
const EtcdPathPrefix = "/registry/rollout.kruise.io"

// shutdownWatchGracePeriod is how long a stopping server lets open watches
// drain before it closes them; clients re-establish them elsewhere.
const shutdownWatchGracePeriod = 5 * time.Second

// ServerOptions are the command-line options of the server.
type ServerOptions struct {
	// RecommendedOptions are the generic server's: serving, delegated
	// authentication and authorization, audit, admission, priority and
	// fairness, and etcd.
	RecommendedOptions *genericoptions.RecommendedOptions

	// EtcdDataDir is where the embedded etcd keeps its data when no
	// --etcd-servers are given.
	EtcdDataDir string
	// EtcdDefragInterval is how often the embedded etcd is defragmented.
	EtcdDefragInterval time.Duration
	// EtcdInProcessClient has the stores call the embedded etcd in-process
	// rather than over its socket (embeddedetcd.Server.RESTOptionsGetter).
	EtcdInProcessClient bool

	// Controller configures the embedded release controller.
	Controller ControllerOptions

	// AlternateDNS are extra names for the self-signed serving certificate.
	AlternateDNS []string

	// ShutdownDelay is how long a stopping server keeps serving (and
	// answers /readyz with failure) before it stops accepting requests, so
	// that endpoints, the aggregator and the webhook's callers move to the
	// other replica first: without it a rolling update gives clients 503s
	// and denies workload updates through failurePolicy Fail.
	ShutdownDelay time.Duration
	// Metrics configures where metric checks may connect and what one query
	// may cost.
	Metrics MetricsOptions

	// MemoryLimit is the Go runtime's soft memory limit (a quantity, "0" for
	// none); empty derives it from the container's memory limit unless
	// GOMEMLIMIT is set (see applyMemoryLimit).
	MemoryLimit string

	// TrustFrontProxyAuthorization allows requests authenticated by the
	// front-proxy certificate (proxied by the aggregator, which authorized
	// them) without a SubjectAccessReview; see frontproxy.go. Off by default.
	TrustFrontProxyAuthorization bool

	// embeddedEtcd is the started embedded etcd (nil with --etcd-servers).
	embeddedEtcd *embeddedetcd.Server

	// embeddedStorageID is the cluster ID of the embedded etcd once it
	// started ("" with --etcd-servers); see controller.LeaderElectionConfig.
	embeddedStorageID string
}

// MetricsOptions configure the metric checks of releases.
type MetricsOptions struct {
	DefaultPrometheusAddress   string
	AllowedPrometheusAddresses []string
	QueryTimeout               time.Duration
	MaxResponseBytes           int64
}

// ControllerOptions configure the embedded release controller.
type ControllerOptions struct {
	Enabled bool
	Workers int
	// KubeAPIQPS and KubeAPIBurst rate-limit the controller's clients of the
	// host cluster; leader election and Events have clients of their own.
	KubeAPIQPS   float32
	KubeAPIBurst int
	// RolloutAPIQPS and RolloutAPIBurst rate-limit its requests to this
	// server's own Rollout API (loopback).
	RolloutAPIQPS   float32
	RolloutAPIBurst int
	LeaderElect     bool
	LeaseName       string
	LeaseNS         string
	LeaseDuration   time.Duration
	RenewDeadline   time.Duration
	RetryPeriod     time.Duration
}

// NewServerOptions returns the defaults.
func NewServerOptions() *ServerOptions {
	o := &ServerOptions{
		RecommendedOptions: genericoptions.NewRecommendedOptions(
			EtcdPathPrefix,
			apiserver.Codecs.LegacyCodec(v1beta1.SchemeGroupVersion),
		),
		// No default: a relative default wrote etcd's data into whatever
		// directory the binary ran from, a git checkout included.
		EtcdDataDir:        "",
		EtcdDefragInterval: embeddedetcd.DefaultDefragInterval,
		// In-process by default: no gRPC marshalling or socket per request.
		EtcdInProcessClient: true,
		Metrics: MetricsOptions{
			QueryTimeout:     10 * time.Second,
			MaxResponseBytes: 1 << 20,
		},
		Controller: ControllerOptions{
			Enabled:         true,
			Workers:         controller.DefaultWorkers,
			KubeAPIQPS:      controller.DefaultKubeQPS,
			KubeAPIBurst:    controller.DefaultKubeBurst,
			RolloutAPIQPS:   controller.DefaultRolloutQPS,
			RolloutAPIBurst: controller.DefaultRolloutBurst,
			LeaderElect:     true,
			LeaseName:       controller.DefaultLeaseName,
			LeaseNS:         controller.DefaultLeaseNS,
			LeaseDuration:   controller.DefaultLeaseDuration,
			RenewDeadline:   controller.DefaultRenewDeadline,
			RetryPeriod:     controller.DefaultRetryPeriod,
		},
	}
	// Objects are stored as v1beta1 whatever version a client used.
	o.RecommendedOptions.Etcd.StorageConfig.EncodeVersioner = runtime.NewMultiGroupVersioner(
		v1beta1.SchemeGroupVersion, schema.GroupKind{Group: v1beta1.GroupName})
	// Objects are stored as protobuf: against JSON a stored Rollout is 31%
	// smaller, 3x faster to encode and 6x faster to decode, and CBOR is slower
	// than JSON here (docs/storage.md has the figures). Objects that an older
	// server wrote as JSON are still read (the storage decoder recognizes
	// JSON, YAML and protobuf) and become protobuf at their next write;
	// --storage-media-type=application/json keeps writing JSON.
	o.RecommendedOptions.Etcd.DefaultStorageMediaType = runtime.ContentTypeProtobuf
	// Self-signed serving certificates stay in memory: on disk under the
	// working directory they were committed once, and the generic server
	// reuses a key pair it finds there, so a published key would serve TLS.
	// An operator may still pass --cert-dir explicitly.
	o.RecommendedOptions.SecureServing.ServerCert.CertDirectory = ""
	// An empty server list selects the embedded etcd (see Validate).
	o.RecommendedOptions.Etcd.StorageConfig.Transport.ServerList = nil
	// The workload webhook is not on the always-allow paths: kube-apiserver
	// calls it with a client certificate (its admission configuration's
	// kubeconfig), and the delegated authorizer lets only an identity allowed
	// to POST /webhooks/workloads in (artifacts/deploy/20-rbac-server.yaml,
	// docs/install.md).
	return o
}

// AddFlags adds the server's flags to fs.
func (o *ServerOptions) AddFlags(fs *pflag.FlagSet) {
	o.RecommendedOptions.AddFlags(fs)
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay-duration", o.ShutdownDelay,
		"Time to keep serving after a termination signal, while /readyz fails, so that load balancers, the aggregator and webhook callers stop sending requests here first.")
	fs.StringVar(&o.EtcdDataDir, "etcd-data-dir", o.EtcdDataDir,
		"Data directory of the embedded etcd; required when --etcd-servers is empty. Keep it outside any source checkout.")
	fs.DurationVar(&o.EtcdDefragInterval, "etcd-defrag-interval", o.EtcdDefragInterval,
		"How often the embedded etcd gives back the space that compaction freed (writes wait while it runs); 0 never. Ignored with --etcd-servers.")
	fs.StringVar(&o.MemoryLimit, "memory-limit", o.MemoryLimit,
		"Soft limit of the Go heap (e.g. 900Mi): the garbage collector works harder near it instead of letting the heap double. "+
			"Empty: GOMEMLIMIT if set, else 85% of the container's (cgroup's) memory limit, else none. 0: no limit.")
	fs.BoolVar(&o.TrustFrontProxyAuthorization, "trust-front-proxy-authorization", o.TrustFrontProxyAuthorization,
		"Do not authorize again the requests that kube-apiserver's aggregator authorized and forwarded (authenticated by the front-proxy client certificate): "+
			"saves a SubjectAccessReview per distinct object read. Every other caller (direct clients, the webhook's caller, impersonated identities) is still authorized by SubjectAccessReview.")
	fs.BoolVar(&o.EtcdInProcessClient, "etcd-in-process-client", o.EtcdInProcessClient,
		"Have the API's stores call the embedded etcd in-process instead of through its unix socket (no gRPC encoding per request); false is for comparisons. Ignored with --etcd-servers.")
	fs.StringSliceVar(&o.AlternateDNS, "alternate-dns", o.AlternateDNS,
		"Extra DNS names for the self-signed serving certificate made when no --tls-cert-file is given.")
	fs.BoolVar(&o.Controller.Enabled, "enable-controller", o.Controller.Enabled,
		"Run the embedded release controller (needs --kubeconfig or in-cluster access to the host cluster).")
	fs.IntVar(&o.Controller.Workers, "controller-workers", o.Controller.Workers,
		"Rollouts reconciled in parallel.")
	fs.Float32Var(&o.Controller.KubeAPIQPS, "controller-kube-api-qps", o.Controller.KubeAPIQPS,
		"Requests per second the controller may send to the host cluster (leader election and Events have clients of their own).")
	fs.IntVar(&o.Controller.KubeAPIBurst, "controller-kube-api-burst", o.Controller.KubeAPIBurst,
		"Burst of requests above --controller-kube-api-qps the controller may send.")
	fs.Float32Var(&o.Controller.RolloutAPIQPS, "controller-rollout-api-qps", o.Controller.RolloutAPIQPS,
		"Requests per second the controller may send to this server's own Rollout API (finalizers, status writes) over the loopback connection.")
	fs.IntVar(&o.Controller.RolloutAPIBurst, "controller-rollout-api-burst", o.Controller.RolloutAPIBurst,
		"Burst of requests above --controller-rollout-api-qps the controller may send.")
	fs.BoolVar(&o.Controller.LeaderElect, "leader-elect", o.Controller.LeaderElect,
		"Elect a leader through a Lease in the host cluster so that only one replica runs the controller; disable for a single replica.")
	fs.StringVar(&o.Controller.LeaseName, "leader-elect-lease-name", o.Controller.LeaseName, "Name of the leader election Lease.")
	fs.StringVar(&o.Controller.LeaseNS, "leader-elect-lease-namespace", o.Controller.LeaseNS, "Namespace of the leader election Lease.")
	fs.DurationVar(&o.Controller.LeaseDuration, "leader-elect-lease-duration", o.Controller.LeaseDuration,
		"How long a leader's Lease is valid; other replicas wait this long after the leader stops renewing.")
	fs.DurationVar(&o.Controller.RenewDeadline, "leader-elect-renew-deadline", o.Controller.RenewDeadline,
		"How long the leader retries renewing before it gives up leadership.")
	fs.DurationVar(&o.Controller.RetryPeriod, "leader-elect-retry-period", o.Controller.RetryPeriod,
		"How often candidates try to acquire or renew the Lease.")
	fs.StringVar(&o.Metrics.DefaultPrometheusAddress, "metrics-default-prometheus-address", o.Metrics.DefaultPrometheusAddress,
		"Prometheus queried by metric checks that name no address, e.g. http://prometheus.monitoring:9090. Empty: such checks are refused.")
	fs.StringSliceVar(&o.Metrics.AllowedPrometheusAddresses, "metrics-allowed-prometheus-addresses", o.Metrics.AllowedPrometheusAddresses,
		"Prometheus addresses a Rollout's metric checks may name: URLs (scheme, host and port must match) or host patterns "+
			"(\"prometheus.monitoring\", \"*.monitoring.svc\"). Empty: any address. Others are rejected with 422.")
	fs.DurationVar(&o.Metrics.QueryTimeout, "metrics-query-timeout", o.Metrics.QueryTimeout,
		"Longest time one metric query may take, connection included.")
	fs.Int64Var(&o.Metrics.MaxResponseBytes, "metrics-max-response-bytes", o.Metrics.MaxResponseBytes,
		"Largest answer to one metric query; a longer one is a measurement error.")
}

// AddressPolicy is where metric checks may connect, from the flags.
func (o *ServerOptions) AddressPolicy() (validation.AddressPolicy, error) {
	return validation.ParseAddressPolicy(o.Metrics.DefaultPrometheusAddress, o.Metrics.AllowedPrometheusAddresses)
}

// UsesEmbeddedEtcd reports whether the server starts its own etcd.
func (o *ServerOptions) UsesEmbeddedEtcd() bool {
	return len(o.RecommendedOptions.Etcd.StorageConfig.Transport.ServerList) == 0
}

// Validate checks the options. An empty --etcd-servers is valid: it means the
// embedded etcd, whose address is filled in when it starts.
func (o *ServerOptions) Validate() error {
	var errs []error
	etcd := o.RecommendedOptions.Etcd
	if o.UsesEmbeddedEtcd() {
		if strings.TrimSpace(o.EtcdDataDir) == "" {
			errs = append(errs, fmt.Errorf("--etcd-data-dir must be set when --etcd-servers is empty"))
		}
		// The generic check insists on servers; give it a placeholder.
		saved := etcd.StorageConfig.Transport.ServerList
		etcd.StorageConfig.Transport.ServerList = []string{"http://127.0.0.1:2379"}
		errs = append(errs, o.RecommendedOptions.Validate()...)
		etcd.StorageConfig.Transport.ServerList = saved
	} else {
		errs = append(errs, o.RecommendedOptions.Validate()...)
	}
	if o.EtcdDefragInterval < 0 {
		errs = append(errs, fmt.Errorf("--etcd-defrag-interval must not be negative, got %s", o.EtcdDefragInterval))
	}
	if _, _, err := memoryLimit(o.MemoryLimit, "", 0); err != nil {
		errs = append(errs, err)
	}
	if o.ShutdownDelay < 0 {
		errs = append(errs, fmt.Errorf("--shutdown-delay-duration must not be negative, got %s", o.ShutdownDelay))
	}
	if o.Controller.Enabled && o.Controller.Workers < 1 {
		errs = append(errs, fmt.Errorf("--controller-workers must be at least 1, got %d", o.Controller.Workers))
	}
	if o.Controller.Enabled && (o.Controller.KubeAPIQPS <= 0 || o.Controller.KubeAPIBurst < 1) {
		errs = append(errs, fmt.Errorf("--controller-kube-api-qps must be positive and --controller-kube-api-burst at least 1, got %v and %d",
			o.Controller.KubeAPIQPS, o.Controller.KubeAPIBurst))
	}
	if o.Controller.Enabled && (o.Controller.RolloutAPIQPS <= 0 || o.Controller.RolloutAPIBurst < 1) {
		errs = append(errs, fmt.Errorf("--controller-rollout-api-qps must be positive and --controller-rollout-api-burst at least 1, got %v and %d",
			o.Controller.RolloutAPIQPS, o.Controller.RolloutAPIBurst))
	}
	if o.Controller.Enabled && o.Controller.LeaderElect && o.Controller.RenewDeadline >= o.Controller.LeaseDuration {
		errs = append(errs, fmt.Errorf("--leader-elect-renew-deadline (%s) must be shorter than --leader-elect-lease-duration (%s)",
			o.Controller.RenewDeadline, o.Controller.LeaseDuration))
	}
	if _, err := o.AddressPolicy(); err != nil {
		errs = append(errs, err)
	}
	if o.Metrics.QueryTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--metrics-query-timeout must be positive, got %s", o.Metrics.QueryTimeout))
	}
	if o.Metrics.MaxResponseBytes <= 0 {
		errs = append(errs, fmt.Errorf("--metrics-max-response-bytes must be positive, got %d", o.Metrics.MaxResponseBytes))
	}
	errs = append(errs, compatibility.DefaultComponentGlobalsRegistry.Validate()...)
	return utilerrors.NewAggregate(errs)
}

// requiredAlwaysAllowPaths are paths served without authorization whatever
// --authorization-always-allow-paths says: health probes come from the
// kubelet, which has no identity here. The workload webhook is not one of
// them: any pod that reaches the port could call it, learn which Rollout
// references a workload and load the server that kube-apiserver's calls
// depend on (failurePolicy Fail).
var requiredAlwaysAllowPaths = []string{"/healthz", "/readyz", "/livez"}

// withRequiredAlwaysAllowPaths adds requiredAlwaysAllowPaths to paths: an
// operator's --authorization-always-allow-paths replaces the flag's default
// list, and without this the probes and the webhook would silently turn 403.
func withRequiredAlwaysAllowPaths(paths []string) []string {
	out := slices.Clone(paths)
	for _, p := range requiredAlwaysAllowPaths {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// withoutHealthChecks returns checks without those named.
func withoutHealthChecks(checks []healthz.HealthChecker, names ...string) []healthz.HealthChecker {
	return slices.DeleteFunc(slices.Clone(checks), func(c healthz.HealthChecker) bool {
		return slices.Contains(names, c.Name())
	})
}

// GenericConfig builds the generic server configuration from the options.
// The etcd server list must be final (the embedded etcd already started).
func (o *ServerOptions) GenericConfig() (*genericapiserver.RecommendedConfig, error) {
	if err := o.RecommendedOptions.SecureServing.MaybeDefaultWithSelfSignedCerts(
		"localhost", o.AlternateDNS, []net.IP{netutils.ParseIPSloppy("127.0.0.1")}); err != nil {
		return nil, fmt.Errorf("creating self-signed certificates: %w", err)
	}

	cfg := genericapiserver.NewRecommendedConfig(apiserver.Codecs)
	namer := openapi.NewDefinitionNamer(apiserver.Scheme)
	cfg.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(generatedopenapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIConfig.Info.Title = "rollout-apiserver"
	cfg.OpenAPIConfig.Info.Version = "v1beta1"
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(generatedopenapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIV3Config.Info.Title = "rollout-apiserver"
	cfg.OpenAPIV3Config.Info.Version = "v1beta1"

	registry := compatibility.DefaultComponentGlobalsRegistry
	cfg.FeatureGate = registry.FeatureGateFor(basecompatibility.DefaultKubeComponent)
	cfg.EffectiveVersion = registry.EffectiveVersionFor(basecompatibility.DefaultKubeComponent)

	// --storage-media-type picks the storage codec: the generic options use
	// it only in kube-apiserver's storage factory, not for the codec that
	// NewRecommendedOptions was given. Its decoder recognizes JSON, YAML and
	// protobuf, whatever the media type written, so objects stored before a
	// change of media type are still read.
	storageCodec, _, err := serverstorage.NewStorageCodec(serverstorage.StorageCodecConfig{
		StorageMediaType:  o.RecommendedOptions.Etcd.DefaultStorageMediaType,
		StorageSerializer: apiserver.Codecs,
		StorageVersion:    v1beta1.SchemeGroupVersion,
		MemoryVersion:     schema.GroupVersion{Group: v1beta1.GroupName, Version: runtime.APIVersionInternal},
	})
	if err != nil {
		return nil, fmt.Errorf("storage codec for --storage-media-type: %w", err)
	}
	o.RecommendedOptions.Etcd.StorageConfig.Codec = storageCodec

	o.RecommendedOptions.Authorization.AlwaysAllowPaths = withRequiredAlwaysAllowPaths(
		o.RecommendedOptions.Authorization.AlwaysAllowPaths)
	if err := o.RecommendedOptions.ApplyTo(cfg); err != nil {
		return nil, fmt.Errorf("applying server options: %w", err)
	}
	if o.embeddedEtcd != nil && o.EtcdInProcessClient {
		cfg.RESTOptionsGetter = o.embeddedEtcd.RESTOptionsGetter(cfg.RESTOptionsGetter, o.RecommendedOptions.Etcd.EnableWatchCache)
	}
	if o.TrustFrontProxyAuthorization {
		if err := trustFrontProxyAuthorization(cfg); err != nil {
			return nil, err
		}
	}
	if !o.UsesEmbeddedEtcd() {
		// An outage of a shared external etcd would fail /livez on every
		// replica at once and have the kubelet restart them all, which
		// fixes nothing; /readyz keeps its etcd checks and takes the
		// replicas out of service instead.
		cfg.LivezChecks = withoutHealthChecks(cfg.LivezChecks, "etcd")
	}
	// Watches proxied by the aggregator (kube-controller-manager keeps some
	// open) would otherwise hold a shutdown for the whole request timeout,
	// longer than a pod's termination grace period: the process would be
	// killed before its embedded etcd closes and its Lease is released.
	cfg.ShutdownWatchTerminationGracePeriod = shutdownWatchGracePeriod
	cfg.ShutdownDelayDuration = o.ShutdownDelay
	return cfg, nil
}
