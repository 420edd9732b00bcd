package logllmprocessor

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/logllm/logllm-plugin/collectors/otel/logllmprocessor/internal/logllmv1"
)

// startTLSFake serves the fake over TLS with a throwaway self-signed certificate for 127.0.0.1;
// returns the address and the certificate's PEM file (the CA a client must trust).
func startTLSFake(t *testing.T, f *fakeInference) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "logllm test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.release = make(chan struct{})
	srv := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	logllmv1.RegisterInferenceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { close(f.release); srv.Stop() })
	return lis.Addr().String(), caFile
}

func TestTLSWithTheServersCA(t *testing.T) {
	addr, caFile := startTLSFake(t, &fakeInference{})
	cfg := testConfig(addr)
	cfg.TLS.Insecure = false
	cfg.TLS.CAFile = caFile
	h := start(t, cfg)
	h.send(lines("a", 4)...)
	if got := h.waitFor(4, 3*time.Second); got[0].attrs[attrStatus] != statusOK {
		t.Fatalf("TLS with the right CA must score: %+v", got[0].attrs)
	}
}

func TestTLSWithoutTrustingTheServerPassesOnUnavailable(t *testing.T) {
	addr, _ := startTLSFake(t, &fakeInference{})
	cfg := testConfig(addr)
	cfg.TLS.Insecure = false // system roots only: the self-signed certificate is not trusted
	h := start(t, cfg)
	h.send(lines("a", 4)...)
	if got := h.waitFor(4, 3*time.Second); got[0].attrs[attrStatus] != statusUnavailable {
		t.Fatalf("an untrusted server certificate must give unavailable: %+v", got[0].attrs)
	}
}
