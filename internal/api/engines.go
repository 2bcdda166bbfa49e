package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/engines"
)

// EngineInfo is one engine of the registry: its spec, where it runs and
// whether it can take work now.
type EngineInfo struct {
	Name       string `json:"name" example:"probe"`
	Title      string `json:"title" example:"Media probe"`
	Kind       string `json:"kind" enum:"builtin,external" doc:"builtin engines run inside weir; external ones registered with a manifest"`
	EngineMode string `json:"engineMode" enum:"chunk,stream,batch"`
	Summary    string `json:"summary"`
	Status     string `json:"status" enum:"available,unavailable,unknown" doc:"Whether the engine can take work now: a built-in engine is unavailable while a program it needs is missing, an HTTP engine while its /ready webhook does not answer 200; a Kafka engine's status is unknown"`
	Reason     string `json:"reason,omitempty" doc:"Why the engine is unavailable, or why its status is unknown"`
	Install    string `json:"install,omitempty" example:"apt-get install -y ffmpeg" doc:"The command that installs what a built-in engine is missing"`
	// Spec is the engine's whole spec: options, examples, requirements.
	Spec         engine.Spec           `json:"spec"`
	HTTP         *engine.HTTPEndpoint  `json:"http,omitempty" doc:"How an HTTP engine is reached (Veritone engine toolkit webhooks under this URL)"`
	Kafka        *engine.KafkaEndpoint `json:"kafka,omitempty" doc:"How a Kafka engine is reached: its work topic and consumer group"`
	Source       string                `json:"source,omitempty" doc:"Where an external engine's manifest came from: api, or file:PATH (--engines-dir)"`
	RegisteredAt *time.Time            `json:"registered_at,omitempty"`
	UpdatedAt    *time.Time            `json:"updated_at,omitempty"`
}

// EngineList is every engine, sorted by name.
type EngineList struct {
	Items []EngineInfo `json:"items"`
}

type engineListOutput struct{ Body EngineList }

type engineNameInput struct {
	Name string `path:"name" maxLength:"63" example:"probe" doc:"Engine name"`
}

type engineOutput struct{ Body EngineInfo }

type engineRegisterInput struct {
	RawBody []byte `contentType:"application/yaml"`
}

type engineRegisterOutput struct {
	Status int
	Body   EngineInfo
}

func (s *Server) registerEngines() {
	huma.Register(s.api, huma.Operation{
		OperationID: "engines-list",
		Method:      http.MethodGet,
		Path:        "/engines",
		Summary:     "List engines",
		Description: "Every engine weir can run: the built-in ones and the external ones registered with a manifest, each with its spec and whether it can take work now. HTTP engines are asked for their /ready webhook as the list is made.",
		Tags:        []string{"engines"},
		Errors:      []int{http.StatusServiceUnavailable},
	}, s.listEngines)

	huma.Register(s.api, huma.Operation{
		OperationID: "engine-get",
		Method:      http.MethodGet,
		Path:        "/engines/{name}",
		Summary:     "Show an engine",
		Description: "One engine's spec, kind and availability.",
		Tags:        []string{"engines"},
		Errors:      []int{http.StatusNotFound, http.StatusServiceUnavailable},
	}, s.getEngine)

	huma.Register(s.api, huma.Operation{
		OperationID:   "engine-register",
		Method:        http.MethodPost,
		Path:          "/engines",
		Summary:       "Register an external engine",
		Description:   "The body is the engine's manifest, JSON or YAML (JSON when it starts with `{`): its spec plus `http` (base URL of Veritone engine toolkit webhooks) or `kafka` (work topic and consumer group). 201 registers a new engine, 200 replaces the manifest of an external engine of that name. A bad manifest is 400 naming the member at fault; a built-in engine's name is 409. docs/engines.md describes the format.",
		Tags:          []string{"engines"},
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  engine.MaxManifestBytes,
		Security:      bearerSecurity,
		Errors:        []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusConflict, http.StatusServiceUnavailable},
	}, s.registerEngine)
	// The handler parses the body itself (JSON or YAML), so describe it by
	// hand.
	manifestSchema := s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[engine.Manifest](), true, "")
	s.api.OpenAPI().Paths["/engines"].Post.RequestBody = &huma.RequestBody{
		Required:    true,
		Description: "The engine's manifest.",
		Content: map[string]*huma.MediaType{
			"application/json": {Schema: manifestSchema},
			"application/yaml": {Schema: &huma.Schema{Type: "string", Description: "The same manifest in YAML"}},
		},
	}

	huma.Register(s.api, huma.Operation{
		OperationID:   "engine-delete",
		Method:        http.MethodDelete,
		Path:          "/engines/{name}",
		Summary:       "Remove an external engine",
		Description:   "Forgets an external engine's manifest. Built-in engines cannot be removed (409).",
		Tags:          []string{"engines"},
		DefaultStatus: http.StatusNoContent,
		Security:      bearerSecurity,
		Errors:        []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusConflict, http.StatusServiceUnavailable},
	}, s.deleteEngine)
}

func (s *Server) listEngines(ctx context.Context, _ *struct{}) (*engineListOutput, error) {
	list, err := s.cfg.Engines.List(ctx)
	if err != nil {
		return nil, s.storeError(ctx, "list engines", err)
	}
	out := &engineListOutput{Body: EngineList{Items: make([]EngineInfo, 0, len(list))}}
	for _, e := range list {
		out.Body.Items = append(out.Body.Items, engineInfo(e))
	}
	return out, nil
}

func (s *Server) getEngine(ctx context.Context, in *engineNameInput) (*engineOutput, error) {
	e, err := s.cfg.Engines.Get(ctx, in.Name)
	if err != nil {
		return nil, s.engineError(ctx, in.Name, "read", err)
	}
	return &engineOutput{Body: engineInfo(e)}, nil
}

func (s *Server) registerEngine(ctx context.Context, in *engineRegisterInput) (*engineRegisterOutput, error) {
	m, err := engine.ParseManifest(in.RawBody)
	var se *engine.SpecError
	if errors.As(err, &se) {
		return nil, manifestProblem(se)
	}
	if err != nil {
		return nil, huma.Error400BadRequest("invalid manifest: " + err.Error())
	}
	e, created, err := s.cfg.Engines.Register(ctx, m, "api")
	if err != nil {
		return nil, s.engineError(ctx, m.Name, "register", err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	s.log.Info("engine registered", "engine", m.Name, "mode", m.Mode, "created", created)
	return &engineRegisterOutput{Status: status, Body: engineInfo(e)}, nil
}

func (s *Server) deleteEngine(ctx context.Context, in *engineNameInput) (*struct{}, error) {
	if err := s.cfg.Engines.Remove(ctx, in.Name); err != nil {
		return nil, s.engineError(ctx, in.Name, "remove", err)
	}
	s.log.Info("engine removed", "engine", in.Name)
	return nil, nil
}

// manifestProblem is the 400 for a bad manifest. Its detail already holds
// the errors[] part, so describeProblem adds nothing.
func manifestProblem(se *engine.SpecError) error {
	loc := "body"
	if se.Field != "" {
		loc += "." + se.Field
	}
	who := "invalid manifest"
	if se.Engine != "" {
		who = fmt.Sprintf("invalid manifest of engine %q", se.Engine)
	}
	return huma.Error400BadRequest(who+": "+describeLocation(loc)+": "+se.Problem,
		&huma.ErrorDetail{Location: loc, Message: se.Problem})
}

// engineError maps the catalog's errors: 404, 409, else a store problem.
func (s *Server) engineError(ctx context.Context, name, op string, err error) error {
	switch {
	case errors.Is(err, engines.ErrNotFound):
		return huma.Error404NotFound(fmt.Sprintf("engine %s not found; GET /engines lists them", name))
	case errors.Is(err, engines.ErrBuiltin):
		return huma.Error409Conflict(fmt.Sprintf("engine %s is built in: an external engine cannot take its name, and it cannot be removed", name))
	}
	return s.storeError(ctx, fmt.Sprintf("%s engine %s", op, name), err)
}

func engineInfo(e engines.Entry) EngineInfo {
	info := EngineInfo{
		Name: e.Spec.Name, Title: e.Spec.DisplayTitle(), Kind: string(e.Kind), EngineMode: string(e.Spec.Mode),
		Summary: e.Spec.Summary, Status: string(e.Status), Reason: e.Reason, Install: e.Install,
		Spec: e.Spec, HTTP: e.HTTP, Kafka: e.Kafka, Source: e.Source,
	}
	if !e.RegisteredAt.IsZero() {
		t, u := e.RegisteredAt.UTC(), e.UpdatedAt.UTC()
		info.RegisteredAt, info.UpdatedAt = &t, &u
	}
	return info
}
