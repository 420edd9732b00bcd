package logllmprocessor

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/extensionauth"
	"go.opentelemetry.io/collector/processor/processortest"
)

// tokenAuth is a client authenticator extension (as bearertokenauth is) for the configauth test.
type tokenAuth struct{ token string }

func (tokenAuth) Start(context.Context, component.Host) error { return nil }
func (tokenAuth) Shutdown(context.Context) error              { return nil }
func (a tokenAuth) PerRPCCredentials() (credentials.PerRPCCredentials, error) {
	return bearer(a.token), nil
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

var _ extensionauth.GRPCClient = tokenAuth{}

type hostWith map[component.ID]component.Component

func (h hostWith) GetExtensions() map[component.ID]component.Component { return h }

func TestAuthenticatorExtensionThroughConfigauth(t *testing.T) {
	f := &fakeInference{token: "from-extension"}
	cfg := testConfig(startFake(t, f))
	id := component.MustNewID("testauth")
	cfg.Auth = configoptional.Some(configauth.Config{AuthenticatorID: id})
	sink := new(consumertest.LogsSink)
	proc, err := NewFactory().CreateLogs(context.Background(), processortest.NewNopSettings(Type), cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Start(context.Background(), hostWith{id: tokenAuth{token: "from-extension"}}); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, proc: proc.(*logllmProcessor), sink: sink, tel: componenttest.NewTelemetry()}
	t.Cleanup(func() { _ = h.proc.Shutdown(context.Background()) })
	h.send(lines("a", 4)...)
	if got := h.waitFor(4, 2*time.Second); got[0].attrs[attrStatus] != statusOK {
		t.Fatalf("the authenticator's token must reach the server: %+v", got[0].attrs)
	}
}

func TestMissingAuthenticatorFailsStart(t *testing.T) {
	cfg := testConfig("127.0.0.1:1")
	cfg.Auth = configoptional.Some(configauth.Config{AuthenticatorID: component.MustNewID("absent")})
	proc, err := NewFactory().CreateLogs(context.Background(), processortest.NewNopSettings(Type), cfg, new(consumertest.LogsSink))
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Start(context.Background(), componenttest.NewNopHost()); err == nil {
		_ = proc.Shutdown(context.Background())
		t.Fatal("start must fail when the auth extension is not configured")
	}
}
