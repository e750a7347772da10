package main

// Protobuf rows: our API is also read in protobuf (GET, LIST, watch), beside the JSON reads
// of ours and of the CRD. Only an aggregated server with generated protobuf can serve it; a
// CRD serves JSON (and CBOR) only, so the CRD column stays JSON.

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	restclientwatch "k8s.io/client-go/rest/watch"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

const protobufType = runtime.ContentTypeProtobuf

// protobufMagic starts every protobuf body of the Kubernetes API (the runtime.Unknown envelope).
var protobufMagic = []byte("k8s\x00")

// protobufInfo is the protobuf serializer (and its watch framing) for rollout.kruise.io/v1beta1.
var protobufInfo = func() runtime.SerializerInfo {
	scheme := runtime.NewScheme()
	if err := v1beta1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	scheme.AddUnversionedTypes(schema.GroupVersion{Version: "v1"}, &metav1.Status{})
	info, ok := runtime.SerializerInfoForMediaType(serializer.NewCodecFactory(scheme).WithoutConversion().SupportedMediaTypes(), protobufType)
	if !ok {
		panic("no protobuf serializer")
	}
	return info
}()

// protobufTarget is t read in protobuf: same server and client, Accept: protobuf.
func protobufTarget(t *target) *target {
	pb := *t
	pb.key, pb.label, pb.accept = t.key+"-pb", t.label+" protobuf", protobufType
	return &pb
}

// acceptHeader is what t asks for: JSON unless it is a protobuf target.
func (t *target) acceptHeader() string {
	if t.accept != "" {
		return t.accept
	}
	return jsonType
}

func (t *target) protobuf() bool { return t.accept == protobufType }

// listMeta reads a list page's resourceVersion and continue token in t's encoding.
func (t *target) listMeta(body []byte) (listMeta, error) {
	if t.protobuf() {
		return protobufListMeta(body)
	}
	return topLevelListMeta(body)
}

// countItems decodes a list page and counts its items.
func (t *target) countItems(body []byte) (int, error) {
	if !t.protobuf() {
		return jsonItems(body)
	}
	list := &v1beta1.RolloutList{}
	if _, _, err := protobufInfo.Serializer.Decode(body, nil, list); err != nil {
		return 0, fmt.Errorf("decoding protobuf list page: %w", err)
	}
	return len(list.Items), nil
}

// protobufListMeta finds a protobuf list's metadata without decoding its items, as
// topLevelListMeta does for JSON: the envelope's raw bytes hold the RolloutList, whose
// field 1 is its ListMeta.
func protobufListMeta(body []byte) (listMeta, error) {
	var m listMeta
	if !bytes.HasPrefix(body, protobufMagic) {
		return m, fmt.Errorf("not a protobuf body (%d bytes)", len(body))
	}
	var u runtime.Unknown
	if err := u.Unmarshal(body[len(protobufMagic):]); err != nil {
		return m, fmt.Errorf("protobuf envelope: %w", err)
	}
	b := u.Raw
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return m, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return m, protowire.ParseError(n)
			}
			var lm metav1.ListMeta
			if err := lm.Unmarshal(v); err != nil {
				return m, fmt.Errorf("list metadata: %w", err)
			}
			return listMeta{ResourceVersion: lm.ResourceVersion, Continue: lm.Continue}, nil
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return m, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return m, fmt.Errorf("no metadata in protobuf list")
}

// readProtobufWatch decodes a protobuf watch stream (length-delimited frames of WatchEvents)
// into w.events, as the JSON reader of openWatch does.
func (w *watcher) readProtobufWatch(stop func() bool, body io.ReadCloser) {
	defer close(w.done)
	defer body.Close()
	dec := restclientwatch.NewDecoder(
		streaming.NewDecoder(protobufInfo.StreamSerializer.Framer.NewFrameReader(body), protobufInfo.StreamSerializer.Serializer),
		protobufInfo.Serializer)
	for {
		typ, obj, err := dec.Decode()
		if err != nil {
			if !stop() {
				w.err = err
			}
			close(w.events)
			return
		}
		ev := watchEvent{typ: string(typ), at: time.Now()}
		if acc, err := meta.Accessor(obj); err == nil {
			ev.name, ev.mark = acc.GetName(), acc.GetLabels()[watchLabel]
		}
		w.events <- ev
	}
}

// protobufTable compares ours read in protobuf with ours and the CRD read in JSON.
func (r *report) protobufTable() string {
	b := r.b
	if b.oursPB == nil {
		return ""
	}
	g := r.get
	pb, js, crd := b.oursPB, b.ours, b.crd
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "Protobuf (our API only; a CRD cannot serve it), through the aggregator, interleaved with the rows above:\n\n")
	fmt.Fprintf(&buf, "| measurement | ours protobuf | ours JSON | Kruise CRD (JSON) | protobuf / ours JSON | protobuf / CRD |\n")
	fmt.Fprintf(&buf, "|---|--:|--:|--:|--:|--:|\n")
	ratio := func(a, b float64) string {
		if a <= 0 || b <= 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	lat := func(name, phase string, p float64) {
		v := func(t *target) (float64, string) {
			x := g(phase, t)
			if x == nil || x.lat.n() == 0 {
				return 0, "—"
			}
			d := x.lat.pct(p)
			return float64(d), fmtDur(d)
		}
		a, as := v(pb)
		j, jsS := v(js)
		c, cs := v(crd)
		fmt.Fprintf(&buf, "| %s | %s | %s | %s | %s | %s |\n", name, as, jsS, cs, ratio(a, j), ratio(a, c))
	}
	bytesRow := func(name, phase string, wire bool) {
		v := func(t *target) (float64, string) {
			x := g(phase, t)
			if x == nil || x.ops == 0 {
				return 0, "—"
			}
			n := float64(x.json) / float64(x.ops)
			if wire {
				n = float64(x.wire) / float64(x.ops)
			}
			return n, fmtBytes(n)
		}
		a, as := v(pb)
		j, jsS := v(js)
		c, cs := v(crd)
		fmt.Fprintf(&buf, "| %s | %s | %s | %s | %s | %s |\n", name, as, jsS, cs, ratio(a, j), ratio(a, c))
	}
	lat("GET p50", "get", 50)
	lat("GET p99", "get", 99)
	for _, ph := range []struct{ key, name string }{
		{"list", fmt.Sprintf("LIST all %d, unpaginated", b.o.n)},
		{"listpage", fmt.Sprintf("LIST all %d, limit=%d", b.o.n, b.o.page)},
	} {
		lat(ph.name+" p50", ph.key, 50)
		lat("… p99", ph.key, 99)
		bytesRow("… bytes on the wire per LIST (gzip)", ph.key, true)
		bytesRow("… body bytes per LIST (decompressed)", ph.key, false)
	}
	lat("watch: patch → event p50", "watch", 50)
	lat("watch p99", "watch", 99)
	return buf.String()
}
