package main

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// recordOneof is the oneof of xdrv1.Record whose field names are the
// record types.
var recordOneof = (&xdrv1.Record{}).ProtoReflect().Descriptor().Oneofs().ByName("record")

// recordTypes are the record type names, in field order.
var recordTypes = func() []string {
	fields := recordOneof.Fields()
	names := make([]string, fields.Len())
	for i := range names {
		names[i] = string(fields.Get(i).Name())
	}
	return names
}()

// recordType returns the type name of r, "" if it has none (a record of a
// newer format).
func recordType(r *xdrv1.Record) string {
	if fd := r.ProtoReflect().WhichOneof(recordOneof); fd != nil {
		return string(fd.Name())
	}
	return ""
}

// filter selects the records snr x prints. A nil set selects all.
type filter struct {
	types  map[string]bool
	access map[xdrv1.XdrAccessType]bool
}

// match reports whether r is selected: its type is among the types, and,
// for events and footprints, its access type among the access types.
func (f *filter) match(r *xdrv1.Record) bool {
	if f.types != nil && !f.types[recordType(r)] {
		return false
	}
	if f.access == nil {
		return true
	}
	switch v := r.GetRecord().(type) {
	case *xdrv1.Record_Event:
		return f.access[v.Event.GetAccessType()]
	case *xdrv1.Record_Footprint:
		return f.access[v.Footprint.GetAccessType()]
	default:
		return true
	}
}

// parseTypes parses a comma-separated list of record type names.
func parseTypes(list string) (map[string]bool, error) {
	set := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		name := strings.ToLower(strings.TrimSpace(s))
		if recordOneof.Fields().ByName(protoreflect.Name(name)) == nil {
			return nil, fmt.Errorf("unknown record type %q (known: %s)", s, strings.Join(recordTypes, ", "))
		}
		set[name] = true
	}
	return set, nil
}

// accessPrefix starts every XdrAccessType value name.
const accessPrefix = "XDR_ACCESS_TYPE_"

// parseAccess parses a comma-separated list of access types: names with
// or without the XDR_ACCESS_TYPE_ prefix in any case, or numbers.
func parseAccess(list string) (map[xdrv1.XdrAccessType]bool, error) {
	set := map[xdrv1.XdrAccessType]bool{}
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if n, err := strconv.ParseInt(s, 10, 32); err == nil {
			set[xdrv1.XdrAccessType(n)] = true
			continue
		}
		name := strings.ToUpper(s)
		if !strings.HasPrefix(name, accessPrefix) {
			name = accessPrefix + name
		}
		v, ok := xdrv1.XdrAccessType_value[name]
		if !ok {
			return nil, fmt.Errorf("unknown access type %q (use a name like FILE_OPEN or %sFILE_OPEN, or a number like 102)", s, accessPrefix)
		}
		set[xdrv1.XdrAccessType(v)] = true
	}
	return set, nil
}
